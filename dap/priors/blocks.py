"""Building blocks of the U-Net priors: conv units, plain and dense blocks, the upsampling stage.

Every block maps ``(B, C_in, F, T)`` to a pair ``(out, skip)``:

* ``out`` (``block.out_channels`` channels) feeds the next stage of the network;
* ``skip`` (``block.skip_channels`` channels) is what a skip connection carries.

For a plain block both are the same tensor. For a dense block ``skip`` is the concatenation
*before* the 1x1 transition and ``out`` is the transition's output (docs/method.md, The prior).

Norm placement (a decision; the notes only say "InstanceNorm in the encoder only"): inside every
conv unit the order is conv -> InstanceNorm -> ReLU, i.e. the norm sits after *each* 3x3 conv and
before its ReLU, in both the plain and the dense blocks, and only when the block belongs to the
encoder. The dense block's transition is a bare 1x1 conv (no norm, no activation) everywhere. This is
also the order the authors' code uses.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvFactory",
    "PhaseSplitConv2d",
    "InstanceNorm2d",
    "standard_conv3x3",
    "ConvUnit",
    "PlainBlock",
    "DenseBlock",
    "UpStage",
    "make_norm",
]

#: ``(in_channels, out_channels, dilation) -> module`` mapping ``(B, in, F, T) -> (B, out, F, T)``.
ConvFactory = Callable[[int, int, int], nn.Module]


class PhaseSplitConv2d(nn.Conv2d):
    """A "same"-padded conv (kernel 3, padding = dilation) that runs dilated convs fast on a CPU.

    ``(B, C_in, F, T) -> (B, C_out, F, T)``, the same parameters and the same function as
    ``nn.Conv2d(..., dilation=d, padding=d)``. On a CPU a dilation d > 1 is computed as an
    *undilated* conv (padding 1) over the d x d polyphase components of the input, stacked along the
    batch axis: output sample ``i = d*q + r`` only reads input samples ``r, r +- d, ...``, i.e.
    phase r. Inputs are zero-padded up to a multiple of d first, which is exactly the conv's own zero
    padding, so the result is exact for any size. Why (slow and, in bf16 channels_last, crashing
    dilated kernels on CPU): docs/method.md, CPU fast path. On other devices the native dilated conv
    runs.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        super().__init__(in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The conv, as ``nn.Conv2d`` with dilation d and padding d would compute it.

        Args:
            x: ``(B, C_in, F, T)``.

        Returns:
            ``(B, C_out, F, T)``.
        """
        d = self.dilation[0]
        if d == 1 or x.device.type != "cpu":
            return super().forward(x)
        b, c, f, t = x.shape
        fp, tp = -(-f // d) * d, -(-t // d) * d
        if (fp, tp) != (f, t):
            x = F.pad(x, (0, tp - t, 0, fp - f))
        h, w = fp // d, tp // d
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # physical (B, F, T, C) -> (B, d, d, h, w, C): one copy, and the phases stay channels_last
            phases = (x.permute(0, 2, 3, 1).reshape(b, h, d, w, d, c).permute(0, 2, 4, 1, 3, 5)
                      .reshape(b * d * d, h, w, c).permute(0, 3, 1, 2))
            y = F.conv2d(phases, self.weight, self.bias, padding=1)
            y = (y.permute(0, 2, 3, 1).reshape(b, d, d, h, w, -1).permute(0, 3, 1, 4, 2, 5)
                 .reshape(b, fp, tp, -1).permute(0, 3, 1, 2))
        else:
            phases = x.reshape(b, c, h, d, w, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, h, w)
            y = F.conv2d(phases, self.weight, self.bias, padding=1)
            y = y.reshape(b, d, d, -1, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, -1, fp, tp)
        return y[:, :, :f, :t]


def standard_conv3x3(in_channels: int, out_channels: int, dilation: int = 1) -> PhaseSplitConv2d:
    """3x3 conv with bias and "same" zero padding (padding = dilation), size-preserving."""
    return PhaseSplitConv2d(in_channels, out_channels, dilation)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d(affine=False)`` that keeps the input's dtype and memory layout.

    ``(B, C, F, T) -> (B, C, F, T)``: ``(x - mean) / sqrt(var + eps)`` over F and T per example and
    channel. Why not the stock layer: under bf16 autocast it returns fp32 and drops channels_last,
    so every following conv pays two full-size copies (cast and re-layout). In bf16 the statistics
    come from ``var_mean`` on bf16 input; the fp32-vs-bf16 fit comparison of results/benchmarks.md
    (within 0.2 dB) covers that.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each example and channel over F and T.

        Args:
            x: ``(B, C, F, T)``.

        Returns:
            ``(B, C, F, T)`` in ``x``'s dtype and memory format.
        """
        var, mean = torch.var_mean(x, dim=(-2, -1), keepdim=True, correction=0)
        # CUDA autocast runs rsqrt in fp32: cast the (B, C, 1, 1) scale back, not the full-size output
        return (x - mean) * torch.rsqrt(var + self.eps).to(x.dtype)


def make_norm(channels: int, enabled: bool) -> nn.Module:
    """InstanceNorm2d without affine parameters or running statistics, or an identity."""
    return InstanceNorm2d(channels) if enabled else nn.Identity()


class ConvUnit(nn.Module):
    """conv -> [InstanceNorm] -> ReLU: ``(B, C_in, F, T) -> (B, C_out, F, T)``."""

    def __init__(self, conv: nn.Module, out_channels: int, norm: bool) -> None:
        super().__init__()
        self.conv = conv
        self.norm = make_norm(out_channels, norm)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv -> [InstanceNorm] -> ReLU.

        Args:
            x: ``(B, C_in, F, T)``.

        Returns:
            ``(B, C_out, F, T)``.
        """
        return self.act(self.norm(self.conv(x)))


class _ConvChain(nn.Module):
    """What both block kinds share: one :class:`ConvUnit` per dilation, unit ``i`` reading
    ``unit_inputs(i)`` channels (the subclass says which)."""

    dense: bool

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...],
        norm: bool,
        conv_factory: ConvFactory = standard_conv3x3,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.units = nn.ModuleList(
            ConvUnit(conv_factory(self.unit_inputs(i), out_channels, d), out_channels, norm)
            for i, d in enumerate(dilations)
        )

    def unit_inputs(self, i: int) -> int:
        raise NotImplementedError


class PlainBlock(_ConvChain):
    """A chain of conv units, one per dilation: ``(B, C_in, F, T) -> (B, C_out, F, T)`` twice.

    Used by the three baselines (two units: conv+norm+ReLU, conv+norm+ReLU) and the harmonic prior.
    """

    dense = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.transition = None
        self.skip_channels = self.out_channels

    def unit_inputs(self, i: int) -> int:
        return self.in_channels if i == 0 else self.out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv units in turn.

        Args:
            x: ``(B, C_in, F, T)``.

        Returns:
            ``(out, skip)``, both the last unit's ``(B, C_out, F, T)``.
        """
        for unit in self.units:
            x = unit(x)
        return x, x

    def chain(self) -> list[nn.Module]:
        """The convs along the block's longest input->output path, in order (for receptive fields)."""
        return [u.conv for u in self.units]


class DenseBlock(_ConvChain):
    """Dense block with transition.

    ``(B, C_in, F, T) -> (out (B, C_out, F, T), skip (B, C_in + n*C_out, F, T))``, n = len(dilations).

    With two dilations: ``a = unit1(x)``, ``b = unit2([a, x])``, ``skip = [b, a, x]``
    (``C_in + 2*C_out`` channels, newest features first), ``out = transition(skip)`` with a bare 1x1 conv.
    """

    dense = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skip_channels = self.in_channels + len(self.units) * self.out_channels
        # Transition: 1x1, dilation 1, no norm, no activation (reduces the concatenation back to out).
        self.transition = nn.Conv2d(self.skip_channels, self.out_channels, kernel_size=1, bias=True)

    def unit_inputs(self, i: int) -> int:
        return self.in_channels + i * self.out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each unit reads the concatenation of the input and every earlier output.

        Args:
            x: ``(B, C_in, F, T)``.

        Returns:
            ``(out (B, C_out, F, T), skip (B, C_in + n*C_out, F, T))``, n = number of units.
        """
        h = x
        for unit in self.units:
            y = unit(h)
            h = torch.cat([y, h.to(y.dtype)], dim=1)  # under autocast: one dtype, so no fp32 promotion
        return self.transition(h), h

    def chain(self) -> list[nn.Module]:
        # Each unit reads every earlier unit's output, so the longest path runs through all of them.
        return [u.conv for u in self.units] + [self.transition]


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling of ``(B, C, F, T) -> (B, C, 2F, 2T)`` (``align_corners=False``).

    ``F.interpolate`` everywhere, except on CUDA with deterministic algorithms on
    (:func:`dap.core.device.precision_mode`): its CUDA backward accumulates with atomics, so it is
    then computed by the same formula from shifted copies (each output is 3/4 of its nearest input
    and 1/4 of the next nearest, edges repeated), whose backward is deterministic."""

    scale_factor, mode = 2, "bilinear"  # read by the receptive-field computation (dap.priors.unet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear x2 upsampling.

        Args:
            x: ``(B, C, F, T)``.

        Returns:
            ``(B, C, 2F, 2T)``.
        """
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return _bilinear_2x(_bilinear_2x(x, -2), -1)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _bilinear_2x(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear x2 upsampling along ``dim`` with half-pixel centres: ``out[2i] = 3/4 x[i] + 1/4 x[i-1]``,
    ``out[2i+1] = 3/4 x[i] + 1/4 x[i+1]`` (indices clamped to the edges)."""
    dim = dim % x.dim()
    n = x.shape[dim]
    before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)
    shape = list(x.shape)
    shape[dim] = 2 * n
    # (..., n, 2, ...) -> (..., 2n, ...): even and odd outputs interleaved
    return torch.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], dim=dim + 1).reshape(shape)


class UpStage(nn.Module):
    """Decoder stage: bilinear x2, 3x3 conv (dilation 1), concat the skip, block.

    ``(x (B, C_low, F/2, T/2), skip (B, C_skip, F, T)) -> (out, skip')`` of the inner block.

    ``up_relu``: the notes say "a 3x3 conv" after the upsampling; the authors' code applies no
    activation there (the conv is linear and feeds the block directly), so ``False`` is the default;
    ``True`` adds a ReLU after it.
    """

    def __init__(self, in_channels: int, out_channels: int, block: nn.Module, up_relu: bool = False) -> None:
        super().__init__()
        self.upsample = Upsample2x()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.act = nn.ReLU() if up_relu else nn.Identity()
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Upsample, conv, concatenate the skip, then the block.

        Args:
            x: ``(B, C_low, F/2, T/2)``; skip: ``(B, C_skip, F, T)``.

        Returns:
            The block's ``(out (B, C_out, F, T), skip')``.
        """
        y = self.act(self.conv(self.upsample(x)))
        return self.block(torch.cat([y, skip], dim=1))
