"""dap.explore.teaching: receptive fields drawn from the models, FLOP counts, the spectral-bias experiment."""

import numpy as np
import pandas as pd
import pytest
import torch

from dap.explore import teaching
from dap.priors import DESIGNS, receptive_field


def test_receptive_field_table_matches_the_models_and_converts_units():
    table = teaching.receptive_field_table(samples=16384).set_index("design")
    assert list(table["frames"]) == [receptive_field(d, "time") for d in DESIGNS]
    assert list(table["bins"]) == [receptive_field(d, "freq") for d in DESIGNS]
    conv = table.loc["Convolution"]
    assert conv["ms"] == round(conv["frames"] * 4) and conv["Hz"] == round(conv["bins"] * 16000 / 1023)
    assert table.loc["Dilated Conv. (exp)", "share of the grid"] == 1.0 > table.loc["Convolution", "share of the grid"]


def test_support_network_is_linear_with_positive_paths():
    net = teaching.support_network("dilated_exp_dense")
    x, y = torch.rand(1, 2, 64, 32), torch.rand(1, 2, 64, 32)
    with torch.no_grad():
        assert torch.allclose(net(2 * x + 3 * y), 2 * net(x) + 3 * net(y), rtol=1e-4, atol=1e-5)
        assert float(net(x).min()) > 0  # averages of positive inputs: no cancellation anywhere


@pytest.mark.parametrize("design", ["conv", "dilated"])
def test_measured_footprint_fills_exactly_the_analytic_receptive_field(design):
    fp = teaching.footprint(design, shape=(256, 256))
    assert fp.shape == (256, 256) and fp.max() == 1.0 and fp.min() == 0.0
    assert teaching.footprint_extent(fp) == (receptive_field(design, "freq"), receptive_field(design, "time"))
    assert fp[128, 128] > 0 and fp[0, 0] == 0


def test_footprint_is_clipped_by_the_grid_and_checks_the_point():
    fp = teaching.footprint("dilated_exp", shape=(64, 32), point=(0, 0))
    assert teaching.footprint_extent(fp) == (64, 32)  # 670 cells do not fit in 64 x 32
    with pytest.raises(ValueError, match="outside"):
        teaching.footprint("conv", shape=(64, 32), point=(64, 0))


def test_receptive_field_figure_draws_one_panel_per_design():
    import matplotlib

    matplotlib.use("Agg")
    clip = np.random.default_rng(0).standard_normal(4096).astype(np.float32)  # 512 x 64 grid
    fig, extents = teaching.receptive_field_figure(clip, designs=("conv", "dilated"))
    assert extents == {"conv": (56, 56), "dilated": (176, 64)}
    assert len([ax for ax in fig.axes if ax.images]) == 2


def test_iteration_gflop_counts_dilation_as_free_and_density_as_not():
    g = {d: teaching.iteration_gflop(d) for d in DESIGNS}
    assert g["conv"] == g["dilated"] == g["dilated_exp"]
    assert g["dilated_exp_dense"] == pytest.approx(228, rel=0.02)  # 228 GFLOP/iteration by torch's counter (benchmarks: results/reference/benchmarks.md)
    assert teaching.iteration_gflop("conv", samples=32768) == pytest.approx(2 * g["conv"])
    assert teaching.iteration_gflop("conv", widths=(16, 32, 64)) < g["conv"] / 4


def test_matched_white_noise_has_the_clip_energy_and_is_seeded():
    clip = np.sin(np.arange(4096) / 10).astype(np.float32)
    n = teaching.matched_white_noise(clip, seed=3)
    assert np.sum(n.astype(np.float64) ** 2) == pytest.approx(np.sum(clip.astype(np.float64) ** 2), rel=1e-5)
    assert np.array_equal(n, teaching.matched_white_noise(clip, seed=3))
    assert not np.array_equal(n, teaching.matched_white_noise(clip, seed=4))


def test_spectral_bias_returns_both_relative_loss_curves():
    clip = (np.sin(2 * np.pi * 440 * np.arange(4096) / 16000) * np.hanning(4096)).astype(np.float32)
    curves = teaching.spectral_bias(clip, "conv", iterations=2, widths=(4, 8, 16), precision="fp32")
    assert list(curves) == ["clean clip", "white noise (same energy)"]
    for h in curves.values():
        assert list(h["iteration"]) == [1, 2]
        # the untrained output is nearly zero, so the first loss is about the target's energy
        assert 0.8 < h["relative_loss"].iloc[0] < 1.2
    fig = teaching.spectral_bias_figure(curves)
    assert len(fig.axes[0].lines) == 2


def test_iterations_to_a_level():
    h = pd.DataFrame({"iteration": [1, 2, 3, 4], "relative_loss": [1.0, 0.6, 0.4, 0.05]})
    assert teaching.iterations_to(h, 0.5) == 3 and teaching.iterations_to(h, 0.1) == 4
    assert np.isnan(teaching.iterations_to(h, 0.01))


def test_cost_table_reports_parameters_flops_and_seconds():
    clip = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    table = teaching.cost_table(clip, designs=("conv",), widths=("4", "8", "16"), iterations=1, precision="fp32")
    row = table.iloc[0]
    assert row["design"] == "Convolution" and row["parameters"] == 8238
    assert row["GFLOP/iteration"] == round(teaching.iteration_gflop("conv", ("4", "8", "16"), 4096), 1)
    assert row["s/iteration (measured)"] > 0


@pytest.mark.parametrize("design", ["conv", "dilated_exp_dense"])
def test_iteration_gflop_agrees_with_torchs_flop_counter(design):
    """The hook count (scaled from a probe, x3 for the backward) against torch's own count of one
    forward + backward at full size; norms and activations are not in either."""
    from torch.utils.flop_counter import FlopCounterMode

    from dap.priors import build_prior

    widths = (4, 8, 16)
    model = build_prior(design, widths=widths)
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.randn(1, 2, 512, 64, requires_grad=True)).square().mean().backward()
    measured = counter.get_total_flops() / 1e9
    assert teaching.iteration_gflop(design, [str(w) for w in widths], 4096) == pytest.approx(measured, rel=0.1)


def _signal_first(clean, noise, level: float = 0.9, margin: float = 0.1) -> bool:
    """The spectral-bias claim on two relative-loss curves: ``clean`` falls to ``level`` before
    ``noise`` does (or ``noise`` never does), and ends at least ``margin`` lower."""
    c, n = teaching.iterations_to(clean, level), teaching.iterations_to(noise, level)
    first = not np.isnan(c) and (np.isnan(n) or c < n)
    return first and clean["relative_loss"].iloc[-1] < noise["relative_loss"].iloc[-1] - margin


def test_a_clean_clip_is_fitted_faster_than_noise_of_the_same_energy():
    """Notebook 10's lesson 3, asserted at small scale: a real spoken digit (0.256 s) and white
    noise of the same energy, the same prior (exponential dilation, widths 4/8/16, same seed), 80
    iterations at lr 1e-2 (ten times the paper's, so that the curves separate within seconds).
    Measured here: relative loss 0.75 for the clip, 0.97 for the noise."""
    from dap.explore import embedded_excerpt

    clip, _ = embedded_excerpt("digits", 0, 0.256)
    curves = teaching.spectral_bias(clip, "dilated_exp", iterations=80, widths=(4, 8, 16), precision="fp32", lr=1e-2)
    clean, noise = curves["clean clip"], curves["white noise (same energy)"]
    assert _signal_first(clean, noise), teaching.spectral_bias_table(curves, levels=(0.9, 0.5))
    assert not _signal_first(noise, clean)  # the check is not symmetric: it can fail
    checks = teaching.spectral_bias_checks(curves)
    assert checks["bias/iterations"] == 80 and checks["bias/clean_final"] < checks["bias/noise_final"]


def test_the_notebooks_tables_and_checks_come_from_teaching():
    h = {"clean clip": pd.DataFrame({"iteration": [1, 2, 3], "relative_loss": [0.9, 0.4, 0.05]}),
         "white noise (same energy)": pd.DataFrame({"iteration": [1, 2, 3], "relative_loss": [1.0, 0.9, 0.8]})}
    table = teaching.spectral_bias_table(h, levels=(0.5, 0.1))
    assert list(table.columns) == ["iterations to 0.5", "iterations to 0.1", "final relative loss"]
    assert table.loc["clean clip", "iterations to 0.5"] == 2 and np.isnan(table.loc["white noise (same energy)",
                                                                                    "iterations to 0.5"])
    checks = teaching.spectral_bias_checks(h)
    assert np.isnan(checks.pop("bias/noise_to_half"))  # the noise never halves its loss here
    assert checks == {"bias/iterations": 3, "bias/clean_final": 0.05, "bias/noise_final": 0.8,
                      "bias/clean_to_half": 2.0}
    rf = teaching.receptive_field_checks(("conv",), {"conv": (11, 22)})
    assert rf == {"rf/conv/bins": receptive_field("conv", "freq"), "rf/conv/frames": receptive_field("conv", "time"),
                  "footprint/conv/bins": 11, "footprint/conv/frames": 22}
    costs = pd.DataFrame([{"design": "Convolution", "parameters": 8238, "GFLOP/iteration": 1.5,
                           "s/iteration (measured)": 0.02}])
    assert teaching.cost_checks(("conv",), costs) == {"params/conv": 8238, "gflop/conv": 1.5, "seconds/conv": 0.02}
