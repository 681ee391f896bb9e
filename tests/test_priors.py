"""Tests of dap.priors: the four U-Net designs of paper 1 and the harmonic convolution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dap.engine.fit import channels_last_safe
from dap.priors import (
    ALL_DESIGNS,
    DESIGN_LABELS,
    DESIGNS,
    DenseBlock,
    HarmonicConv2d,
    InstanceNorm2d,
    PhaseSplitConv2d,
    UNetPrior,
    build_prior,
    count_parameters,
    dilation_schedule,
    layer_spec,
    receptive_field,
)

SMALL = (4, 6, 8)  # widths for fast shape checks; the shape logic does not depend on widths


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ API and shapes

def test_public_names() -> None:
    assert DESIGNS == ("conv", "dilated", "dilated_exp", "dilated_exp_dense")
    assert ALL_DESIGNS == DESIGNS + ("harmonic",)
    assert [DESIGN_LABELS[d] for d in DESIGNS] == [
        "Convolution",
        "Dilated Conv.",
        "Dilated Conv. (exp)",
        "Dilated Conv. (exp) + Dense",
    ]


@pytest.mark.parametrize("design", ALL_DESIGNS)
@pytest.mark.parametrize("shape", [(1, 2, 64, 32), (2, 2, 32, 64)])
def test_small_shapes(design: str, shape: tuple[int, ...]) -> None:
    widths = SMALL[:2] if design == "harmonic" else SMALL
    opts = {"kernel_size": (3, 3), "anchor": 2} if design == "harmonic" else {}
    model = build_prior(design, widths=widths, **opts)
    out = model(torch.randn(*shape, generator=_seeded()))
    assert out.shape == shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("frames", [256, 512])  # 1.024 s and 2.048 s at hop 64
def test_clip_sizes_small_widths(design: str, frames: int) -> None:
    model = build_prior(design, widths=(2, 2, 2))
    with torch.no_grad():
        out = model(torch.randn(1, 2, 512, frames, generator=_seeded()))
    assert out.shape == (1, 2, 512, frames)


def test_full_size_forward_dense() -> None:
    model = build_prior("dilated_exp_dense")
    with torch.no_grad():
        out = model(torch.randn(1, 2, 512, 256, generator=_seeded()))
    assert out.shape == (1, 2, 512, 256)
    assert torch.isfinite(out).all()


def test_dense_tensor_walk() -> None:
    """Channel counts of the notes' tensor walk (72, 175, 350 before transitions; 245/107 decoder inputs)."""
    model = build_prior("dilated_exp_dense")
    assert [b.skip_channels for b in model.encoder] == [72, 175, 350]
    assert [b.out_channels for b in model.encoder] == [35, 70, 140]
    ups = list(model.decoder)
    assert [(s.conv.in_channels, s.conv.out_channels) for s in ups] == [(140, 70), (70, 35)]
    assert [s.block.units[0].conv.in_channels for s in ups] == [245, 107]
    assert [s.block.transition.out_channels for s in ups] == [70, 35]
    assert (model.final.in_channels, model.final.out_channels, model.final.kernel_size) == (35, 2, (1, 1))


@pytest.mark.parametrize(
    "shape", [(1, 2, 62, 32), (1, 2, 64, 30), (1, 2, 64, 34), (1, 3, 64, 32), (2, 64, 32)]
)
def test_invalid_sizes_raise(shape: tuple[int, ...]) -> None:
    model = build_prior("conv", widths=SMALL)
    with pytest.raises(ValueError):
        model(torch.zeros(*shape))


def test_invalid_options_raise() -> None:
    with pytest.raises(ValueError):
        build_prior("resnet")
    with pytest.raises(TypeError):
        build_prior("conv", kernel_size=(3, 3))
    with pytest.raises(ValueError):
        dilation_schedule("dilated_exp", exp_start=3)


def test_options_channels() -> None:
    model = build_prior("dilated_exp_dense", in_channels=3, out_channels=1, widths=SMALL)
    assert model(torch.randn(1, 3, 16, 8, generator=_seeded())).shape == (1, 1, 16, 8)


def test_up_relu_option() -> None:
    plain = build_prior("conv", widths=SMALL)
    relu = build_prior("conv", widths=SMALL, up_relu=True)
    assert all(isinstance(s.act, nn.Identity) for s in plain.decoder)  # default: linear up-conv
    assert all(isinstance(s.act, nn.ReLU) for s in relu.decoder)


def test_gradient_reaches_every_parameter() -> None:
    model = build_prior("dilated_exp_dense", widths=SMALL)
    model(torch.randn(1, 2, 32, 16, generator=_seeded())).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ------------------------------------------------------------------ parameter counts

def test_parameter_counts_full_width() -> None:
    counts = {d: count_parameters(build_prior(d)) for d in ALL_DESIGNS}
    print("parameter counts:", counts)
    assert abs(counts["dilated_exp_dense"] - 1.09e6) / 1.09e6 < 0.02
    # The three baselines share topology and widths, so their counts are identical.
    assert counts["conv"] == counts["dilated"] == counts["dilated_exp"]
    assert counts["conv"] < counts["dilated_exp_dense"]


# ------------------------------------------------------------------ dilations and norms

def _block_dilations(model: UNetPrior) -> list[tuple[str, tuple[int, ...]]]:
    """Walk the modules: dilations of the 3x3 Conv2d of each block (the 1x1 transitions excluded)."""
    out = []
    for name, block in model.named_blocks():
        dils = tuple(
            m.dilation[0]
            for m in block.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
        )
        out.append((name, dils))
    return out


EXPECTED = {
    "conv": [(1, 1)] * 5,
    "dilated": [(4, 4)] * 5,
    "dilated_exp": [(1, 2), (4, 8), (16, 32), (32, 16), (8, 4)],
    "dilated_exp_dense": [(1, 2), (4, 8), (16, 32), (32, 16), (8, 4)],
}


@pytest.mark.parametrize("design", DESIGNS)
def test_schedules_in_modules(design: str) -> None:
    model = build_prior(design, widths=SMALL)
    names = ["start", "down1", "down2", "up2", "up1"]
    assert _block_dilations(model) == list(zip(names, EXPECTED[design]))
    assert dilation_schedule(design) == list(zip(names, EXPECTED[design]))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # Symmetric dilation with "same" zero padding.
            assert m.dilation[0] == m.dilation[1]
            assert m.padding == tuple((k - 1) // 2 * d for k, d in zip(m.kernel_size, m.dilation))
            assert m.padding_mode == "zeros" and m.bias is not None
    # Upsampling convs, transitions and the output conv: dilation 1.
    for stage in model.decoder:
        assert stage.conv.dilation == (1, 1) and stage.conv.kernel_size == (3, 3)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
            assert m.dilation == (1, 1)


def test_exp_start_two_paper_text_variant() -> None:
    model = build_prior("dilated_exp_dense", widths=SMALL, exp_start=2)
    assert [d for _, d in _block_dilations(model)] == [(2, 4), (8, 16), (32, 64), (64, 32), (16, 8)]
    assert model(torch.randn(1, 2, 16, 8, generator=_seeded())).shape == (1, 2, 16, 8)


@pytest.mark.parametrize("design", DESIGNS)
def test_instance_norm_encoder_only(design: str) -> None:
    model = build_prior(design, widths=SMALL)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    for block in model.encoder:
        norms = [m for m in block.modules() if isinstance(m, nn.InstanceNorm2d)]
        assert len(norms) == 2
        assert all(not n.affine and not n.track_running_stats for n in norms)
    for stage in model.decoder:
        assert not any(isinstance(m, nn.InstanceNorm2d) for m in stage.modules())
    assert isinstance(model.encoder[0], DenseBlock) == (design == "dilated_exp_dense")


def test_dense_block_structure() -> None:
    """skip == [b, a, x]; out == transition(skip) with a bare 1x1 conv."""
    block = DenseBlock(3, 5, (1, 2), norm=True)
    x = torch.randn(1, 3, 8, 8, generator=_seeded())
    out, skip = block(x)
    a = block.units[0](x)
    b = block.units[1](torch.cat([a, x], 1))
    torch.testing.assert_close(skip, torch.cat([b, a, x], 1))
    torch.testing.assert_close(out, block.transition(skip))
    assert skip.shape[1] == 3 + 2 * 5 and out.shape[1] == 5


# ------------------------------------------------------------------ receptive field

def test_receptive_fields() -> None:
    rf = {d: receptive_field(d, widths=SMALL) for d in DESIGNS}
    print("receptive fields:", rf)
    assert rf["conv"] < rf["dilated"] < rf["dilated_exp"]
    assert rf["dilated_exp"] == rf["dilated_exp_dense"]
    # Notes: ~50 / ~170 / ~660 (they leave out the bilinear interpolation windows, +6 here).
    for design, approx in [("conv", 50), ("dilated", 170), ("dilated_exp", 660)]:
        assert abs(rf[design] - approx) <= 0.15 * approx, (design, rf[design])
    assert receptive_field("conv", axis="freq", widths=SMALL) == rf["conv"]  # isotropic kernels


def test_receptive_field_walks_the_model() -> None:
    """A one-level model is two 3x3 convs plus a 1x1: 1 + 2 + 2 = 5; dilation 4: 1 + 8 + 8 = 17."""
    assert receptive_field(build_prior("conv", widths=(3,))) == 5
    assert receptive_field(build_prior("dilated", widths=(3,))) == 17
    kinds = [op[0] for op in layer_spec(build_prior("conv", widths=SMALL))]
    assert kinds.count("pool") == 2 and kinds.count("upsample") == 2


# ------------------------------------------------------------------ harmonic convolution

def _interp(x: np.ndarray, pos: float) -> float:
    """Linear interpolation of a 1-D array extended with zeros past its end."""
    i = math.floor(pos)
    w = pos - i
    get = lambda j: x[j] if j < len(x) else 0.0  # noqa: E731
    return (1 - w) * get(i) + w * get(i + 1)


def _harmonic_slow(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, anchor: int) -> np.ndarray:
    """Direct evaluation of Y[o,f,t] = b[o] + sum_{c,k,tau} W[o,c,k,tau] X[c, k f / n, t + tau]."""
    n_out, n_in, k_f, k_t = weight.shape
    _, n_bins, n_frames = x.shape
    y = np.zeros((n_out, n_bins, n_frames))
    for o in range(n_out):
        for f in range(n_bins):
            for t in range(n_frames):
                acc = bias[o]
                for c in range(n_in):
                    for k in range(1, k_f + 1):
                        for j in range(k_t):
                            tt = t + j - k_t // 2
                            if 0 <= tt < n_frames:
                                acc += weight[o, c, k - 1, j] * _interp(x[c, :, tt], k * f / anchor)
                y[o, f, t] = acc
    return y


@pytest.mark.parametrize("anchor", [1, 2, 3])
def test_harmonic_matches_definition(anchor: int) -> None:
    torch.manual_seed(anchor)
    layer = HarmonicConv2d(2, 3, kernel_size=(3, 3), anchor=anchor).double()
    x = torch.randn(1, 2, 12, 5, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)[0].numpy()
    ref = _harmonic_slow(x[0].numpy(), layer.weight.detach().numpy(), layer.bias.detach().numpy(), anchor)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_harmonic_float32_and_tall_kernel() -> None:
    """K_f larger than the spectrogram reaches reads entirely past the top bin (zeros)."""
    torch.manual_seed(0)
    layer = HarmonicConv2d(1, 2, kernel_size=(5, 1), anchor=2)
    x = torch.randn(1, 1, 7, 3)
    with torch.no_grad():
        y = layer(x)[0].numpy()
    ref = _harmonic_slow(x[0].double().numpy(), layer.weight.detach().double().numpy(),
                         layer.bias.detach().double().numpy(), 2)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_harmonic_anchor1_kf1_is_a_time_conv() -> None:
    torch.manual_seed(0)
    layer = HarmonicConv2d(3, 4, kernel_size=(1, 5), anchor=1)
    x = torch.randn(2, 3, 10, 9)
    expected = nn.functional.conv2d(x, layer.weight, layer.bias, padding=(0, 2))
    torch.testing.assert_close(layer(x), expected)


def test_harmonic_shapes_gradients_and_cache() -> None:
    torch.manual_seed(0)
    layer = HarmonicConv2d(2, 3, kernel_size=(3, 3), anchor=2)
    assert layer.weight.shape == (3, 2, 3, 3)
    x = torch.randn(1, 2, 12, 5, requires_grad=True)
    layer(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.bias.grad is not None
    layer(torch.randn(1, 2, 8, 5))
    assert len(layer._matrices) == 2  # one per spectrogram height
    assert not any("matri" in k for k in layer.state_dict())
    with pytest.raises(ValueError):
        HarmonicConv2d(2, 3, kernel_size=(3, 2))


def test_harmonic_anchor_mixture() -> None:
    torch.manual_seed(0)
    mixed = HarmonicConv2d(2, 3, kernel_size=(3, 3), anchors=(1, 2))
    singles = [HarmonicConv2d(2, 3, kernel_size=(3, 3), anchor=a, bias=False) for a in (1, 2)]
    for s in singles:
        s.weight = mixed.weight
    with torch.no_grad():
        mixed.mix_logits.copy_(torch.tensor([0.3, -0.2]))
    x = torch.randn(1, 2, 12, 5)
    a = torch.softmax(mixed.mix_logits.detach(), 0)
    expected = a[0] * singles[0](x) + a[1] * singles[1](x) + mixed.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(mixed(x), expected)
    mixed(x).sum().backward()
    assert mixed.mix_logits.grad is not None


def test_harmonic_prior() -> None:
    model = build_prior("harmonic", widths=(4, 6))
    assert any(isinstance(m, HarmonicConv2d) for m in model.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # Norm in every block: 3 blocks (start, down1, up1) x 2 units.
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in model.modules()) == 6
    x = torch.randn(1, 2, 64, 32, generator=_seeded())
    assert model(x).shape == x.shape
    full = build_prior("harmonic")
    assert full.widths == (35, 70)
    with pytest.raises(ValueError):
        receptive_field(full, axis="freq")
    assert receptive_field(full, axis="time") > 1


def _native_dilated_prior(design: str) -> UNetPrior:
    """A prior whose dilated convs are plain nn.Conv2d (no phase split): what the guard protects."""
    return UNetPrior(widths=SMALL, schedule=dilation_schedule(design), design=design,
                     conv_factory=lambda i, o, d=1: nn.Conv2d(i, o, 3, padding=d, dilation=d))


def test_cpu_bf16_channels_last_guard() -> None:
    """The combination that segfaults in oneDNN's backward is refused with a message instead."""
    cl = torch.channels_last
    model = _native_dilated_prior("dilated_exp").to(memory_format=cl)
    x = torch.randn(1, 2, 16, 8, generator=_seeded()).to(memory_format=cl)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="channels_last"):
        model(x)
    model(x)  # fp32 channels_last is fine
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 contiguous is fine
        _native_dilated_prior("dilated_exp")(x.contiguous())
    assert not channels_last_safe(model, torch.device("cpu"))
    assert channels_last_safe(model, torch.device("cuda"))  # the guard is about oneDNN only


@pytest.mark.parametrize("design", DESIGNS)
def test_fast_path_bf16_channels_last_backward(design: str) -> None:
    """Every design trains in bf16 + channels_last on CPU (the fit's fast path): finite gradients
    through the real dilations (up to 32), with the phase-split convs the guard lets through."""
    cl = torch.channels_last
    model = build_prior(design, widths=SMALL).to(memory_format=cl)
    assert channels_last_safe(model, torch.device("cpu"))
    x = torch.randn(1, 2, 64, 32, generator=_seeded()).to(memory_format=cl)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=cl)
    y.float().square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("dilation, size", [(1, (8, 6)), (2, (8, 6)), (4, (13, 7)), (8, (16, 16)), (32, (12, 40))])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_phase_split_conv_equals_dilated_conv(dilation: int, size: tuple[int, int], layout: str) -> None:
    """The phase-split conv computes exactly nn.Conv2d(dilation=d, padding=d): outputs and gradients,
    for sizes that are not multiples of d (zero-padded phases) and in both memory layouts."""
    torch.manual_seed(0)
    fast = PhaseSplitConv2d(3, 5, dilation)
    ref = nn.Conv2d(3, 5, 3, padding=dilation, dilation=dilation)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    fast, ref = fast.double(), ref.double()
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    torch.testing.assert_close(yf, yr)
    (yf * yr.detach()).sum().backward()
    (yr * yr.detach()).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)


def test_instance_norm_keeps_dtype_and_layout() -> None:
    """Same values as the stock layer, but bf16 stays bf16 and channels_last stays channels_last."""
    x = torch.randn(2, 4, 16, 8, generator=_seeded()) * 3 + 1
    norm = InstanceNorm2d(4)
    torch.testing.assert_close(norm(x), F.instance_norm(x, eps=norm.eps))
    xb = x.to(torch.bfloat16).to(memory_format=torch.channels_last)
    y = norm(xb)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.float(), F.instance_norm(x, eps=norm.eps), atol=0.05, rtol=0.02)


def test_instance_norm_stays_bf16_where_autocast_runs_rsqrt_in_fp32(monkeypatch) -> None:
    """CUDA's autocast puts rsqrt on its fp32 list; the norm must still return bf16 (checked here by
    making rsqrt return fp32, as it does there; not run on a GPU in this suite)."""
    real = torch.rsqrt
    monkeypatch.setattr(torch, "rsqrt", lambda t: real(t.float()))
    xb = (torch.randn(2, 4, 16, 8, generator=_seeded()) * 3 + 1).to(torch.bfloat16)
    y = InstanceNorm2d(4)(xb.to(memory_format=torch.channels_last))
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)


def test_dense_block_keeps_autocast_dtype() -> None:
    """Under bf16 autocast the dense concatenation stays bf16 (an fp32 input would otherwise
    promote every skip tensor to fp32 and cost a full-size cast per conv)."""
    block = DenseBlock(2, 3, (1, 2), norm=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, skip = block(torch.randn(1, 2, 8, 8))
    assert out.dtype == skip.dtype == torch.bfloat16
