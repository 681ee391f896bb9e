"""The informed separator of paper 2: shapes, attention, ReLU, sizes, baselines, gradients."""

import pytest
import torch

from dap.priors import count_parameters
from dap.wiass.model import InformedSeparator, ones_side_info

F_SMALL, H_SMALL = 17, 8


def small(variant: str = "informed") -> InformedSeparator:
    torch.manual_seed(0)
    return InformedSeparator(n_freq=F_SMALL, hidden=H_SMALL, variant=variant)


def inputs(b: int = 2, n: int = 6, m: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, n, F_SMALL, generator=g), torch.rand(b, m, 1, generator=g)


def test_shapes_attention_rows_and_relu():
    mix, side = inputs()
    target, att = small()(mix, side)
    assert target.shape == (2, 6, F_SMALL)
    assert att.shape == (2, 6, 9)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 6))
    assert (att >= 0).all()
    assert (target >= 0).all()


def test_output_has_exact_zeros_from_relu():
    # A large negative output bias forces the ReLU to clip: the model can emit exact silence.
    model = small()
    with torch.no_grad():
        model.output.bias.fill_(-100.0)
    target, _ = model(*inputs())
    assert torch.count_nonzero(target) == 0


def test_paper_size_parameter_count():
    model = InformedSeparator()  # F = 513, hidden = 513, D = 1
    assert count_parameters(model) == 32_160_996  # "about 32 M"
    assert model.score.weight.shape == (1026, 1026)
    assert model.connection.weight.shape == (513, 2052)
    assert count_parameters(InformedSeparator(variant="bl1")) == 22_140_054


def test_paper_size_forward_on_tiny_input():
    model = InformedSeparator()
    with torch.no_grad():
        target, att = model(torch.rand(1, 3, 513), torch.rand(1, 4, 1))
    assert target.shape == (1, 3, 513) and att.shape == (1, 3, 4)


def test_bl1_without_side_information():
    model = small("bl1")
    mix, side = inputs()
    target, att = model(mix)
    assert target.shape == mix.shape and att is None
    assert model.side_encoder is None and model.score is None
    # Side information passed to BL1 is ignored.
    torch.testing.assert_close(model(mix, side)[0], target)


def test_bl2_is_the_informed_model_fed_ones():
    mix, _ = inputs()
    ones = ones_side_info(2, 6)
    assert ones.shape == (2, 6, 1) and bool((ones == 1).all())
    target, att = small()(mix, ones)
    assert target.shape == mix.shape and att.shape == (2, 6, 6)


def test_informed_requires_side_information():
    with pytest.raises(ValueError, match="side_info"):
        small()(inputs()[0])


@pytest.mark.parametrize("bad", [torch.rand(2, 6, 3), torch.rand(3, 9, 1), torch.rand(9, 1)])
def test_bad_side_information_shapes(bad):
    with pytest.raises(ValueError):
        small()(inputs()[0], bad)


def test_bad_mixture_shape_and_variant():
    with pytest.raises(ValueError, match="mixture_mag"):
        small()(torch.rand(2, 6, F_SMALL + 1), torch.rand(2, 9, 1))
    with pytest.raises(ValueError, match="variant"):
        InformedSeparator(variant="bl2")


def test_side_mask_zeroes_padding_weights():
    mix, side = inputs()
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[:, :3] = False
    _, att = small()(mix, side, side_mask=mask)
    assert torch.all(att[:, :, :3] == 0)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 6))
    with pytest.raises(ValueError, match="masks every step"):
        small()(mix, side, side_mask=torch.zeros(2, 9, dtype=torch.bool))


@pytest.mark.parametrize("variant", ["informed", "bl1"])
def test_gradients_reach_every_parameter(variant):
    model = small(variant)
    mix, side = inputs()
    target, _ = model(mix, side)
    (target - mix).abs().mean().backward()  # L1 loss, as in the paper
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if variant == "informed":
        assert model.side_encoder.weight_ih_l0.grad.abs().sum() > 0


def test_runs_on_the_inputs_device_and_dtype():
    model = small().double()
    mix, side = inputs()
    target, att = model(mix.double(), side)  # side info is cast to the mixture's dtype
    assert target.dtype == torch.float64 and att.device == mix.device
