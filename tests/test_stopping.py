"""Blind stopping: the noise-floor formula, the blind noise estimates, the engine's discrepancy rule,
the tables that show it, and a small real fit that must beat its input."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dap import metrics, noise
from dap.core.audio import istft, stft
from dap.engine.fit import FitConfig, FitSettingError, fit
from dap.studies.common import load_normalised
from dap.studies.stopping import corrupt_at_snr

L = 4096


@pytest.fixture(scope="module")
def speech():
    return [c.audio for c in load_normalised("speech", 4, 0, "embedded", None, 16384)]


# ----------------------------------------------------------------------------- the formula
def test_window_energy_is_that_of_a_periodic_hann():
    assert noise.window_energy() == pytest.approx(3 * 1023 / 8)


@pytest.mark.parametrize("sigma", [0.01, 0.3])
def test_white_noise_loss_floor_matches_the_formula(sigma):
    """The loss of a perfect fit = mean over (2, F, T) of STFT(noise)^2 = sigma^2 sum w^2 / 2."""
    rng = np.random.default_rng(7)
    measured = np.mean([torch.mean(stft(sigma * rng.standard_normal(16384)) ** 2).item() for _ in range(8)])
    assert measured == pytest.approx(noise.loss_floor_from_variance(sigma ** 2), rel=0.02)
    assert noise.loss_floor_from_variance(sigma ** 2) == pytest.approx(sigma ** 2 * 383.625 / 2)


def test_true_loss_floor_is_the_loss_of_the_clean_stft():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(8192).astype(np.float32) * 0.2
    noisy = clean + 0.05 * rng.standard_normal(8192).astype(np.float32)
    direct = torch.mean((stft(clean) - stft(noisy)) ** 2).item()
    assert noise.true_loss_floor(noisy, clean) == pytest.approx(direct, rel=1e-4)


# ----------------------------------------------------------------------------- estimates
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_white_noise_is_estimated_within_1_5_db_on_speech(speech, snr):
    for i, clean in enumerate(speech):
        noisy, _ = corrupt_at_snr(clean, "white", snr, seed=i)
        true = noise.true_loss_floor(noisy, clean)
        for kind in ("white", "auto"):
            est = noise.estimate_noise(noisy, kind)
            assert est.kind == "white"  # auto sees a flat spectrum
            assert abs(10 * np.log10(est.loss_floor / true)) < 1.5, (i, snr, kind)
        assert est.input_snr_db == pytest.approx(snr, abs=1.5)


def test_traffic_noise_is_coloured_and_estimated_per_frequency(speech):
    from dap.data import load_clips

    traffic = next(c for c in load_clips("noise") if c.id == "traffic-lincity-high")
    clean = speech[0]
    from dap.tasks.denoise import add_environmental_noise

    noisy = add_environmental_noise(clean, traffic.audio, 5.0, seed=0)
    auto = noise.estimate_noise(noisy, "auto")
    assert auto.kind == "coloured"
    true = noise.true_loss_floor(noisy, clean)
    white = noise.estimate_noise(noisy, "white")
    # the top band misses most of a low-frequency noise; minimum statistics follows it
    assert abs(10 * np.log10(auto.loss_floor / true)) < 3.0
    assert 10 * np.log10(white.loss_floor / true) < -6.0


def test_bad_inputs_to_the_estimators_are_named():
    with pytest.raises(noise.NoiseEstimateError, match="too few"):
        noise.estimate_noise(np.ones(1000, np.float32) * 0.1)  # < 1024 samples
    with pytest.raises(noise.NoiseEstimateError, match="unknown noise estimator"):
        noise.estimate_noise(np.random.default_rng(0).standard_normal(8192), "pink")
    quiet = np.sin(np.arange(8192) * 0.05).astype(np.float32)  # no noise at all: a tiny, positive floor
    assert 0 < noise.estimate_noise(quiet).loss_floor < 1e-6 * noise.power_spectrogram(quiet).mean()


# ----------------------------------------------------------------------------- the engine's rule
class Free(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.x = nn.Parameter(torch.zeros(shape))

    def forward(self):
        return self.x


def _free_fit(cfg, floor, **kw):
    rng = np.random.default_rng(0)
    clean = (0.8 * np.sin(2 * np.pi * 300 * np.arange(L) / 16000)).astype(np.float32)
    noisy = (clean + 0.3 * rng.standard_normal(L)).astype(np.float32)
    target = stft(noisy)[None]
    res = fit(Free(tuple(target.shape)), lambda p: torch.mean((p - target) ** 2), lambda p: istft(p, L), cfg,
              track=lambda w: {"snr": metrics.snr(clean, w[0])}, noise_floor=floor, **kw)
    return res


def test_discrepancy_is_the_first_iterate_at_the_floor_and_extends_past_the_budget():
    cfg = FitConfig(iterations=5, max_iterations=400, lr=0.1, progress=False, precision="fp32", device="cpu")
    first_loss = _free_fit(FitConfig(iterations=1, progress=False, precision="fp32", device="cpu"), None).history["loss"][0]
    floor = first_loss * 0.8  # a free parameter fits the observation: the loss passes any positive level
    res = _free_fit(cfg, floor)
    h = res.history.set_index("iteration")
    k = res.best_iteration["discrepancy"]
    assert res.extra["discrepancy_reached"] and k > 5
    assert h.loc[k, "loss"] <= floor < h.loc[k - 1, "loss"]  # the first one
    assert res.iterations == k  # nothing is computed after the rule has its answer
    assert res.best_iteration["last"] == 5 and res.best_iteration["ema"] == 5  # the budget's rules stay
    # the same fit run to k without the rule: its last iterate is the discrepancy output
    plain = _free_fit(FitConfig(iterations=k, lr=0.1, progress=False, precision="fp32", device="cpu"), None)
    np.testing.assert_allclose(res.outputs["discrepancy"], plain.outputs["last"], atol=1e-6)


def test_discrepancy_not_reached_runs_to_the_cap_and_says_so():
    cfg = FitConfig(iterations=3, max_iterations=12, lr=1e-4, progress=False, precision="fp32", device="cpu")
    res = _free_fit(cfg, 1e-9)
    assert not res.extra["discrepancy_reached"] and res.iterations == 12
    assert res.best_iteration["discrepancy"] == 12 and res.best_iteration["last"] == 3


def test_stop_at_discrepancy_ends_the_fit_within_the_budget():
    cfg = FitConfig(iterations=400, lr=0.1, progress=False, precision="fp32", device="cpu", stop_at_discrepancy=True)
    first = _free_fit(FitConfig(iterations=1, progress=False, precision="fp32", device="cpu"), None).history["loss"][0]
    res = _free_fit(cfg, first * 0.5)
    assert res.iterations == res.best_iteration["discrepancy"] == res.best_iteration["last"] < 400


def test_without_a_floor_there_is_no_discrepancy_output():
    res = _free_fit(FitConfig(iterations=3, max_iterations=50, progress=False, precision="fp32", device="cpu"), None)
    assert "discrepancy" not in res.outputs and res.iterations == 3 and res.extra == {}


@pytest.mark.parametrize("floor", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_noise_floor_is_refused(floor):
    with pytest.raises(FitSettingError, match="noise_floor"):
        _free_fit(FitConfig(iterations=2, progress=False, device="cpu"), floor)


# ----------------------------------------------------------------------------- tables
def test_tables_leave_out_a_rule_without_rows(tmp_path):
    from dap.report.tables import publish_table, rules_with_rows

    rows = pd.DataFrame({"selection": ["oracle", "last"], "status": ["ok", "ok"]})
    assert rules_with_rows(rows, ("oracle", "last", "ema", "discrepancy")) == ["oracle", "last"]
    rows = pd.DataFrame([{"fit_id": "f", "design": "conv", "dataset": "digits", "clip_id": "c0", "metric": m, "selection": s,
                          "value": 1.0, "status": "ok"} for s in ("oracle", "last") for m in ("PESQ", "PSNR")])
    publish_table(rows, "table1", tmp_path, "caption")
    md = (tmp_path / "table1.md").read_text()
    assert "the last iterate" in md and "discrepancy" not in md


# ----------------------------------------------------------------------------- a real fit
def _tone(n=4096):
    t = np.arange(n) / 16000
    return (0.5 * np.sin(2 * np.pi * 220 * t) + 0.25 * np.sin(2 * np.pi * 440 * t + 1)
            + 0.12 * np.sin(2 * np.pi * 660 * t + 2)).astype(np.float32)


def test_the_rule_picks_the_first_iterate_at_the_floor_and_never_looks_at_the_clean_clip(one_thread):
    from dap.tasks import denoise

    clean = _tone()
    noisy, _ = corrupt_at_snr(clean, "white", 5.0, seed=3)
    cfg = FitConfig(iterations=12, lr=1e-2, progress=False, precision="fp32", device="cpu")
    free = denoise.restore(noisy, "conv", cfg, seed=0, prior_opts={"widths": (4, 8, 16)}, noise=None, clean=clean)
    losses = free.history.set_index("iteration")["loss"]
    floor = float(losses.loc[8]) * 1.0001  # an estimate the fit passes at iteration 8 (or earlier)
    first = int(losses.index[losses <= floor][0])
    fixed = noise.NoiseEstimate("given", np.full(512, 2 * floor), 1.0)
    blind = denoise.restore(noisy, "conv", cfg, seed=0, prior_opts={"widths": (4, 8, 16)}, noise=fixed)
    scored = denoise.restore(noisy, "conv", cfg, seed=0, prior_opts={"widths": (4, 8, 16)}, noise=fixed, clean=clean)
    assert blind.best_iteration["discrepancy"] == scored.best_iteration["discrepancy"] == first
    np.testing.assert_array_equal(blind.outputs["discrepancy"], scored.outputs["discrepancy"])
    assert "oracle" not in blind.outputs and scored.extra["noise_floor_error_db"] is not None


def test_small_prior_with_the_default_rule_beats_a_5db_input(one_thread):
    """A small dense prior (widths 8/16/32) on 0.256 s of a harmonic tone at 5 dB white noise, with
    restore's constant learning rate: the rule's output (floor or cap) must beat the input by 1 dB.
    It can fail: a wrong floor (stopping early) or a wrong iterate would not."""
    from dap.tasks import denoise

    clean = _tone()
    noisy, extra = corrupt_at_snr(clean, "white", 5.0, seed=3)
    cfg = FitConfig(iterations=300, lr=1e-2, lr_step=10_000, progress=False, precision="fp32", device="cpu",
                    stop_at_discrepancy=True)
    res = denoise.restore(noisy, "dilated_exp_dense", cfg, seed=0, prior_opts={"widths": (8, 16, 32)})
    assert res.ok and abs(res.extra["input_snr_est"] - extra["input_snr"]) < 1.0
    gain = metrics.snr(clean, res.outputs["discrepancy"][0]) - extra["input_snr"]
    assert gain >= 1.0, (gain, res.best_iteration, res.extra)


# ----------------------------------------------------------------------------- the study's verdict
def test_stopping_claims_and_table_from_rows():
    from dap.studies.stopping import stopping_claims, stopping_table

    def fit_rows(fid, snr_in, values, reached):
        return [{"fit_id": fid, "design": "conv", "noise": "white", "mix_snr_db": snr_in, "input_snr": snr_in,
                 "selection": rule, "metric": "SNR", "value": v, "status": "ok", "best_iteration": it,
                 "discrepancy_reached": reached, "noise_floor_error_db": 0.1}
                for rule, (v, it) in values.items()]

    rows = pd.DataFrame(fit_rows("a", 5.0, {"oracle": (9.0, 300), "last": (8.0, 200), "discrepancy": (8.5, 250)}, True)
                        + fit_rows("b", 20.0, {"oracle": (21.0, 900), "last": (12.0, 200),
                                               "discrepancy": (19.0, 1500)}, False))
    claims = stopping_claims(rows, margin_db=1.0)
    assert claims["n_fits"] == 2 and not claims["never_worse_than_input"] and claims["n_worse_than_input"] == 1
    assert claims["worst_gain_db"] == pytest.approx(-1.0) and claims["largest_gap_to_oracle_db"] == pytest.approx(2.0)
    assert claims["n_outside_margin"] == 1 and not claims["within_margin_of_oracle"]
    table = stopping_table(rows)
    d = table[(table["rule"] == "discrepancy") & (table["input_snr_db"] == 20.0)].iloc[0]
    assert d["gain_db"] == pytest.approx(-1.0) and d["iterations"] == 1500 and d["reached"] == 0.0
    assert list(table[table["input_snr_db"] == 5.0]["rule"]) == ["oracle", "last", "discrepancy"]


def test_a_steady_tone_is_not_taken_for_noise():
    """Minimum statistics sees a steady tone in every frame; auto must not call it noise."""
    t = np.arange(16384) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) + 1e-4 * np.random.default_rng(0).standard_normal(16384)).astype(np.float32)
    assert noise.estimate_coloured(tone).input_snr_db < -10  # what the coloured estimator alone concludes
    auto = noise.estimate_noise(tone)
    assert auto.kind == "white" and auto.input_snr_db > 60
