"""The U-Net priors of paper 1 (four designs) and a harmonic-convolution U-Net.

Topology (docs/method.md, The prior), for widths ``(w0, w1, ..., w_{L-1})`` (default 35/70/140,
L = 3 levels, L-1 = 2 poolings):

* encoder: ``start`` block ``in -> w0`` at full size; ``down_l``: 2x2 max-pool then a block
  ``w_{l-1} -> w_l``. Encoder blocks carry InstanceNorm (no affine, no running stats).
* decoder: ``up_l`` (l = L-1 .. 1): bilinear x2 (align_corners=False), 3x3 conv (dilation 1)
  ``w_l -> w_{l-1}``, concatenate the skip of the encoder block at that size, block -> ``w_{l-1}``.
  No normalisation in the decoder.
* a linear 1x1 conv ``w0 -> out_channels``.

Designs (same topology and widths; they differ in the block and the dilations):

=====================  ============================  ======================================
design                 block                         dilations of the block 3x3 convs
=====================  ============================  ======================================
``conv``               2 x (conv, norm, ReLU)        1 everywhere
``dilated``            2 x (conv, norm, ReLU)        4 everywhere
``dilated_exp``        2 x (conv, norm, ReLU)        (1,2),(4,8),(16,32) | (32,16),(8,4)
``dilated_exp_dense``  dense + 1x1 transition        same as ``dilated_exp``
``harmonic``           2 x (harmonic conv, norm, ReLU)  n/a (harmonic taps along frequency)
=====================  ============================  ======================================

``exp_start=2`` gives the paper text's variant ((2,4),(8,16),(32,64) | (64,32),(16,8)); the authors'
code (``exp_start=1``) is the default. Upsampling convs and transitions always use dilation 1.

All models map ``(B, in_channels, F, T) -> (B, out_channels, F, T)`` with F and T divisible by
``2 ** (L - 1)`` (4 for the default widths).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
from torch import nn

from dap.priors.blocks import ConvFactory, DenseBlock, PhaseSplitConv2d, PlainBlock, UpStage, standard_conv3x3
from dap.priors.designs import DEFAULT_WIDTHS, DESIGN_LABELS, HARMONIC_DEFAULTS, get_design
from dap.priors.harmonic import HarmonicConv2d

__all__ = [
    "DESIGNS",
    "ALL_DESIGNS",
    "DESIGN_LABELS",
    "DEFAULT_WIDTHS",
    "HARMONIC_DEFAULTS",
    "UNetPrior",
    "build_prior",
    "count_parameters",
    "dilation_schedule",
    "layer_spec",
    "native_dilated_convs",
    "receptive_field",
]

DESIGNS: tuple[str, ...] = ("conv", "dilated", "dilated_exp", "dilated_exp_dense")
ALL_DESIGNS: tuple[str, ...] = DESIGNS + ("harmonic",)

_NORM_CHOICES = ("encoder", "all", "none")

#: Largest conv dilation that is safe under bf16 + channels_last on CPU (see
#: ``UNetPrior._check_cpu_bf16_channels_last``): dilation >= 5 segfaults in the backward, and
#: dilation 4 silently returns NaN gradients (measured: the constant-dilation design's loss is NaN
#: from iteration 2), so only undilated convolutions qualify. The priors' own convs
#: (:class:`PhaseSplitConv2d`) never run a dilated kernel on a CPU, so this only restricts
#: plain ``nn.Conv2d`` modules with dilation.
CL_BF16_MAX_DILATION = 1


def native_dilated_convs(module: nn.Module) -> list[nn.Conv2d]:
    """Convs of ``module`` that would run a dilated kernel (> CL_BF16_MAX_DILATION) on a CPU."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and not isinstance(m, PhaseSplitConv2d)
            and max(m.dilation) > CL_BF16_MAX_DILATION]


def _block_names(levels: int) -> list[str]:
    """``start, down1, ..., down{L-1}, up{L-1}, ..., up1``."""
    enc = ["start"] + [f"down{l}" for l in range(1, levels)]
    dec = [f"up{l}" for l in range(levels - 1, 0, -1)]
    return enc + dec


def dilation_schedule(
    design: str, exp_start: int = 1, levels: int = 3
) -> list[tuple[str, tuple[int, ...]]]:
    """Dilations of the 3x3 convs of each block, in forward order.

    Returns ``[(block_name, (d1, d2)), ...]`` for ``start, down1, down2, up2, up1`` (default 3 levels).
    Exponential: encoder level l gets ``(s*4**l, 2*s*4**l)`` with ``s = exp_start``; decoder block
    ``up_l`` mirrors encoder level l reversed (so the decoder starts where the bottleneck ended).
    For ``harmonic`` the (time) dilation is 1 everywhere.
    """
    spec = get_design(design)
    if exp_start not in (1, 2):
        raise ValueError(f"exp_start must be 1 (authors' code) or 2 (paper text), got {exp_start}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return list(zip(_block_names(levels), spec.dilations(levels, exp_start)))


class UNetPrior(nn.Module):
    """U-Net prior ``(B, in_channels, F, T) -> (B, out_channels, F, T)``.

    Args:
        in_channels, out_channels: 2 and 2 for real+imaginary STFTs.
        widths: channels per level, ``len(widths)`` levels (``len - 1`` poolings).
        schedule: from :func:`dilation_schedule` (one entry per block, encoder then decoder).
        dense: dense blocks with transitions (the proposed design) instead of plain blocks.
        norm: ``"encoder"`` (the paper's priors), ``"all"`` or ``"none"``: where InstanceNorm goes.
        conv_factory: builds the block convs (standard 3x3, or harmonic).
        up_relu: ReLU after the upsampling conv (default False, as in the authors' code).
        design: name kept for reporting.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        schedule: list[tuple[str, tuple[int, ...]]] | None = None,
        dense: bool = False,
        norm: str = "encoder",
        conv_factory: ConvFactory = standard_conv3x3,
        up_relu: bool = False,
        design: str = "custom",
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty tuple of positive ints, got {widths}")
        if norm not in _NORM_CHOICES:
            raise ValueError(f"norm must be one of {_NORM_CHOICES}, got {norm!r}")
        levels = len(widths)
        schedule = schedule if schedule is not None else dilation_schedule("conv", levels=levels)
        if [n for n, _ in schedule] != _block_names(levels):
            raise ValueError(f"schedule names {[n for n, _ in schedule]} do not match {levels} levels")
        self.design = design
        self.in_channels, self.out_channels = in_channels, out_channels
        self.widths = widths
        self.levels = levels
        self.schedule = list(schedule)
        block_cls = DenseBlock if dense else PlainBlock
        dil = dict(schedule)

        self.encoder = nn.ModuleList()
        prev = in_channels
        for l, w in enumerate(widths):
            name = "start" if l == 0 else f"down{l}"
            blk = block_cls(prev, w, dil[name], norm=norm in ("encoder", "all"), conv_factory=conv_factory)
            self.encoder.append(blk)
            prev = blk.out_channels
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

        self.decoder = nn.ModuleList()
        for l in range(levels - 1, 0, -1):
            w = widths[l - 1]
            skip = self.encoder[l - 1].skip_channels
            blk = block_cls(w + skip, w, dil[f"up{l}"], norm=norm == "all", conv_factory=conv_factory)
            self.decoder.append(UpStage(prev, w, blk, up_relu=up_relu))
            prev = blk.out_channels
        self.final = nn.Conv2d(prev, out_channels, kernel_size=1, bias=True)  # linear output
        self._wide_convs = native_dilated_convs(self)

    @property
    def size_multiple(self) -> int:
        """F and T must be multiples of this (one halving per pooling)."""
        return 2 ** (self.levels - 1)

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """``[(name, block)]`` in forward order, names as in :func:`dilation_schedule`."""
        names = _block_names(self.levels)
        blocks = list(self.encoder) + [stage.block for stage in self.decoder]
        return list(zip(names, blocks))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, F, T)`` with F, T multiples of 2**(L-1)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"prior expects a (B, {self.in_channels}, F, T) tensor, got shape {tuple(x.shape)}"
            )
        m = self.size_multiple
        f, t = x.shape[-2:]
        if f % m or t % m or f == 0 or t == 0:
            raise ValueError(
                f"prior input needs F and T divisible by {m} ({self.levels - 1} poolings), "
                f"got F={f}, T={t}; pad or crop the spectrogram (e.g. 16384 samples -> 512 x 256)"
            )

    def _check_cpu_bf16_channels_last(self, x: torch.Tensor) -> None:
        """Refuse the one combination that crashes the process instead of raising.

        With torch 2.14.1 on CPU (oneDNN, AVX-512), the *backward* of a bf16 3x3 conv in
        channels_last memory format segfaults for dilations >= 5 at the sizes used here (e.g.
        35 channels at 512 x 256 with dilation 5..8; 70-140 channels at 128 x 64 with 16..32; the
        outcome varies run to run near the edge), and with dilation 4 it yields NaN gradients. The exponential
        designs have dilations up to 32, so bf16 + channels_last on CPU would kill a notebook
        kernel with no message. bf16 in the default (contiguous) format, and fp32 in channels_last,
        both work.
        """
        if not self._wide_convs or x.device.type != "cpu":
            return
        bf16 = x.dtype == torch.bfloat16 or self._wide_convs[0].weight.dtype == torch.bfloat16 or (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        if not bf16:
            return
        cl = torch.channels_last
        tensors = [x] + [m.weight for m in self._wide_convs]
        if any(t.is_contiguous(memory_format=cl) and not t.is_contiguous() for t in tensors):
            raise RuntimeError(
                f"{self.design}: bf16 with channels_last memory format on CPU crashes (segfault in "
                f"the oneDNN backward, or NaN gradients, for convs with dilation > {CL_BF16_MAX_DILATION}); keep the "
                "model and input in the default contiguous format when using bf16 on CPU"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder, bottleneck and decoder with skips.

        Args:
            x: ``(B, in_channels, F, T)``, F and T multiples of :attr:`size_multiple`.

        Returns:
            ``(B, out_channels, F, T)``.
        """
        self.check_input(x)
        self._check_cpu_bf16_channels_last(x)
        skips = []
        h = x
        for l, blk in enumerate(self.encoder):
            if l > 0:
                h = self.pool(h)
            h, skip = blk(h)
            skips.append(skip)
        for stage, skip in zip(self.decoder, reversed(skips[:-1])):
            h, _ = stage(h, skip)
        return self.final(h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_prior(design: str, **opts: Any) -> UNetPrior:
    """Build a registered design (:func:`dap.priors.designs.get_design`; the paper's: :data:`ALL_DESIGNS`).

    Options (all designs): ``in_channels`` (2), ``out_channels`` (2), ``widths`` ((35, 70, 140);
    harmonic: (35, 70)), ``exp_start`` (1; only the exponential designs use it), ``up_relu`` (False),
    ``norm`` ("encoder"; harmonic: "all"). Harmonic only: ``kernel_size`` ((7, 3)), ``anchor`` (7),
    ``anchors`` (None, or a tuple to mix several anchors with learned softmax weights).
    """
    spec = get_design(design)
    allowed = {"in_channels", "out_channels", "widths", "exp_start", "up_relu", "norm"} | spec.options
    unknown = set(opts) - allowed
    if unknown:
        raise TypeError(f"build_prior({design!r}) got unknown options {sorted(unknown)}")
    cfg = {**spec.defaults, **opts}
    widths = tuple(cfg["widths"])
    return UNetPrior(
        in_channels=cfg.get("in_channels", 2),
        out_channels=cfg.get("out_channels", 2),
        widths=widths,
        schedule=dilation_schedule(design, exp_start=cfg.get("exp_start", 1), levels=len(widths)),
        dense=spec.dense,
        norm=cfg["norm"],
        conv_factory=spec.conv_factory(cfg),
        up_relu=cfg.get("up_relu", False),
        design=design,
    )


# ---------------------------------------------------------------- receptive field

def _conv_op(m: nn.Module, axis: int) -> tuple:
    if isinstance(m, HarmonicConv2d):
        return ("harmonic", m.kernel_size[axis], 1)
    if isinstance(m, nn.Conv2d):
        return ("conv", m.kernel_size[axis], m.dilation[axis])
    raise TypeError(f"no receptive-field rule for {type(m).__name__}")


def layer_spec(model: UNetPrior, axis: str = "time") -> list[tuple]:
    """Declarative list of the layers along the model's deepest path, read from its modules.

    ``axis``: ``"freq"`` (dim -2) or ``"time"`` (dim -1). Entries are ``("conv", kernel, dilation)``,
    ``("harmonic", kernel, 1)``, ``("pool", kernel, stride)`` and ``("upsample", taps, factor)``
    (bilinear: each output reads 2 neighbours at the coarse resolution).
    The deepest path runs through every encoder block and every decoder stage; skips only add
    shorter paths, so they never widen the receptive field.
    """
    if axis not in ("freq", "time"):
        raise ValueError(f"axis must be 'freq' or 'time', got {axis!r}")
    ax = 0 if axis == "freq" else 1
    spec: list[tuple] = []
    for l, blk in enumerate(model.encoder):
        if l > 0:
            k, s = model.pool.kernel_size, model.pool.stride
            k = k if isinstance(k, int) else k[ax]
            s = s if isinstance(s, int) else s[ax]
            spec.append(("pool", k, s))
        spec += [_conv_op(m, ax) for m in blk.chain()]
    for stage in model.decoder:
        factor = stage.upsample.scale_factor
        factor = int(factor if isinstance(factor, (int, float)) else factor[ax])
        taps = 2 if stage.upsample.mode in ("bilinear", "linear") else 1
        spec.append(("upsample", taps, factor))
        spec.append(_conv_op(stage.conv, ax))
        spec += [_conv_op(m, ax) for m in stage.block.chain()]
    spec.append(_conv_op(model.final, ax))
    return spec


def receptive_field(design: str | UNetPrior, axis: str = "time", **opts: Any) -> int:
    """Analytic receptive field along one axis, in input bins (freq) or frames (time).

    Walks :func:`layer_spec` keeping the receptive field ``r`` and the stride product ``j``
    (input samples per feature sample): a kernel-k conv with dilation d adds ``(k-1)*d*j``; a
    pool adds ``(k-1)*j`` then multiplies ``j`` by its stride; a bilinear x2 upsampling adds
    ``(2-1)*j`` (each output mixes two coarse neighbours) then divides ``j`` by 2.

    Counting the pooling and interpolation windows makes the values a few units larger than the
    notes' rough figures (conv 56, dilated 176, dilated_exp 670 vs ~50 / ~170 / ~660).
    A harmonic model has no local window along frequency (its taps reach K_f*f/n), so only
    ``axis="time"`` is defined for it.
    """
    model = build_prior(design, **opts) if isinstance(design, str) else design
    r, j = Fraction(1), Fraction(1)
    for op in layer_spec(model, axis):
        kind = op[0]
        if kind == "harmonic" and axis == "freq":
            raise ValueError("harmonic convolution has no finite local receptive field along frequency")
        if kind in ("conv", "harmonic"):
            r += (op[1] - 1) * op[2] * j
        elif kind == "pool":
            r += (op[1] - 1) * j
            j *= op[2]
        elif kind == "upsample":
            r += (op[1] - 1) * j
            j /= op[2]
    return int(r)
