"""dap.studies: the common set-up of every study (same fit ids as before it was shared) and the
numbers the notebooks used to compute themselves (Figure 1's peaks, Figure 2's headline ratio,
Table 3's gap table)."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from dap import studies
from dap.config import profiles
from dap.core.store import ResultStore
from dap.engine.fit import FitConfig
from dap.studies import convergence, denoising, inpainting, separation, stopping
from dap.studies.common import fit_settings


# ----------------------------------------------------------------------------- the common set-up
def _capture(monkeypatch, module):
    """Replace ``module.run_grid`` by a recorder: no fit runs, the grids are kept."""
    calls = []

    def fake(store, grid, clips, designs, run_fit, evaluate, **kw):
        calls.append({"grid": grid, "designs": designs, "run_fit": run_fit, **kw})
        return pd.DataFrame(columns=["fit_id", "metric", "dataset", "status"])

    monkeypatch.setattr(module, "run_grid", fake)
    return calls


def test_denoising_sets_up_as_before_and_now_accepts_prior_opts(tmp_path, monkeypatch):
    calls = _capture(monkeypatch, denoising)
    p = profiles.resolve("02_table1_gaussian_denoising", "smoke", datasets=("digits",))
    denoising.denoising_study(ResultStore(tmp_path), p, "gaussian")
    (call,) = calls
    # the settings (hence the fit ids) of the code before the set-up was shared
    assert call["grid"].settings == {**fit_settings(p), "noise": "gaussian",
                                     "discrepancy": denoising.DISCREPANCY_SETTINGS, "sigma": p.sigma}
    assert call["grid"].task == "denoise-gaussian" and call["workers"] == 1
    assert call["run_fit"].keywords["prior_opts"] is None and call["run_fit"].keywords["cfg"].iterations == 2
    calls.clear()
    small = p.replace(prior_opts={"widths": (4, 8, 16)})
    denoising.denoising_study(ResultStore(tmp_path), small, "gaussian")
    assert calls[0]["grid"].settings["prior_opts"] == {"widths": (4, 8, 16)}
    assert calls[0]["run_fit"].keywords["prior_opts"] == {"widths": (4, 8, 16)}


def test_environmental_denoising_sets_up_as_before(tmp_path, monkeypatch):
    calls = _capture(monkeypatch, denoising)
    p = profiles.resolve("03_table2_environmental_denoising", "smoke")
    denoising.denoising_study(ResultStore(tmp_path), p, "environmental")
    assert calls[0]["grid"].settings == {**fit_settings(p), "noise": "environmental",
                                         "discrepancy": denoising.DISCREPANCY_SETTINGS, "snr_db": (5.0, 9.0)}


def test_inpainting_sets_up_as_before(tmp_path, monkeypatch):
    calls = _capture(monkeypatch, inpainting)
    p = profiles.resolve("04_table3_inpainting", "smoke", datasets=("digits",))
    inpainting.inpainting_study(ResultStore(tmp_path), p)
    assert calls[0]["grid"].settings == {**fit_settings(p), **{k: getattr(p, k) for k in inpainting.MASK_KEYS},
                                         "prior_opts": {"widths": (4, 8, 16)}}
    assert "workers" not in calls[0]  # serial, as the published rows were computed
    quick = profiles.resolve("04_table3_inpainting", "quick", datasets=("digits",), n_clips=1)
    calls.clear()
    inpainting.inpainting_study(ResultStore(tmp_path), quick)
    assert "prior_opts" not in calls[0]["grid"].settings  # None: the paper's priors, not in the id


def test_separation_sets_up_as_before(tmp_path, monkeypatch):
    calls = _capture(monkeypatch, separation)
    p = profiles.resolve("05_table4_separation", "smoke")
    separation.separation_study(ResultStore(tmp_path), p)
    weights, guard = separation.separation_weights(p), separation.collapse_guard(p)
    assert calls[0]["grid"].settings == {**fit_settings(p), "domain": p.domain, "ratio_db": p.ratio_db,
                                         "time_variation": p.time_variation, **weights.as_settings(),
                                         **asdict(guard), "prior_opts": p.prior_opts}
    assert calls[0]["run_fit"].keywords["prior_opts"] == p.prior_opts


def test_stopping_sets_up_as_before(tmp_path, monkeypatch):
    calls = _capture(monkeypatch, stopping)
    p = profiles.resolve("11_blind_stopping", "smoke", noises=("white",), snrs=(5.0,))
    stopping.stopping_study(ResultStore(tmp_path), p)
    (call,) = calls
    assert call["grid"].settings == {**fit_settings(p), "max_iterations": 4, "tolerance": 1.0,
                                     "noise_estimator": "auto", "prior_opts": {"widths": (4, 8, 16)},
                                     "noise": "white", "snr_db": 5.0}
    cfg = call["run_fit"].keywords["cfg"]
    assert isinstance(cfg, FitConfig) and (cfg.iterations, cfg.max_iterations, cfg.discrepancy_tolerance) == (2, 4, 1.0)


def test_study_setup_leaves_unset_prior_opts_out_of_the_ids():
    p = profiles.resolve("02_table1_gaussian_denoising", "smoke")
    setup = studies.study_setup(p, "t", {"x": 1})
    assert setup.prior_opts is None and "prior_opts" not in setup.grid.settings and setup.grid.settings["x"] == 1
    assert (setup.grid.task, setup.grid.profile, setup.grid.seed) == ("t", "smoke", 0)
    assert setup.config.iterations == 2 and setup.config.precision == "fp32"


def test_a_budget_before_the_peak_says_what_its_ranking_favours():
    from dap.studies.common import scale_deviations

    quick = profiles.resolve("02_table1_gaussian_denoising", "quick")
    assert any("before most designs' curves have peaked" in d for d in scale_deviations(quick))
    to_peak = quick.replace(oracle_patience=50, oracle_cap=600)  # the oracle runs to its peak: no such caveat
    assert not any("peaked" in d for d in scale_deviations(to_peak))


# ----------------------------------------------------------------------------- Figure 2: the headline ratio
def _table(**iterations):
    return pd.DataFrame([{"design": d, "iterations_to_90pct_peak": it, "peak_snr": 10.0 + k,
                          "seconds_per_iteration": 0.5} for k, (d, it) in enumerate(iterations.items())])


def test_headline_ratio_is_harmonic_over_proposed_iterations():
    table = _table(conv=50, dilated_exp_dense=20, harmonic=200)
    assert convergence.headline_ratio(table) == pytest.approx(10.0)
    assert convergence.headline_ratio(table, slow="conv") == pytest.approx(2.5)
    assert np.isnan(convergence.headline_ratio(_table(conv=50, dilated_exp_dense=20)))  # no harmonic fit
    m = convergence.convergence_checks(table)
    assert m["ratio_harmonic_vs_dense_iterations"] == pytest.approx(10.0)
    assert m["harmonic/iterations_to_90pct_peak"] == 200.0 and m["conv/peak_snr"] == 10.0
    assert len(m) == 1 + 3 * 3


def test_headline_ratio_from_real_curves():
    """Through convergence_table: a curve that reaches 90 % of its peak at iteration 5 against one at 50."""
    rows, curves = [], {}
    for design, rise in (("dilated_exp_dense", 5), ("harmonic", 50)):
        snr = np.minimum(np.arange(1, 101) / rise, 1.0) * 10
        curves[design] = pd.DataFrame({"iteration": np.arange(1, 101), "mean": snr, "n_clips": 1})
        rows.append({"fit_id": design, "design": design, "status": "ok", "seconds": 10.0, "iterations": 100,
                     "precision": "fp32", "device": "cpu", "selection": "oracle", "metric": "SNR", "value": 10.0,
                     "best_iteration": 100})
    table = convergence.convergence_table(curves, pd.DataFrame(rows))
    assert list(table["iterations_to_90pct_peak"]) == [5, 45]
    assert convergence.headline_ratio(table) == pytest.approx(9.0)


# ----------------------------------------------------------------------------- Figure 1: peaks per design
def test_example_peaks_and_their_checks():
    h = pd.DataFrame({"iteration": [1, 2, 3, 4], "snr": [1.0, 5.0, 4.0, 3.0]})
    peaks = studies.example_peaks({"conv": h, "dilated": h.assign(snr=h["snr"] * 2)}, {"conv": (3, 4.0, True)})
    assert list(peaks.index) == ["conv", "dilated"] and list(peaks.columns) == list(denoising.PEAK_COLUMNS)
    conv, dil = peaks.loc["conv"], peaks.loc["dilated"]
    assert (conv["peak_snr"], conv["peak_iteration"], conv["last_snr"]) == (5.0, 2, 3.0)
    assert (conv["discrepancy_snr"], conv["discrepancy_iteration"], conv["discrepancy_reached"]) == (4.0, 3, True)
    assert np.isnan(dil["discrepancy_snr"]) and dil["discrepancy_iteration"] == -1 and not dil["discrepancy_reached"]
    m = studies.example_checks(peaks)
    assert m["n_designs"] == 2 and m["dilated/peak_snr"] == 10.0
    assert type(m["conv/peak_iteration"]) is int and type(m["conv/discrepancy_reached"]) is bool
    assert type(m["conv/peak_snr"]) is float and len(m) == 1 + 2 * len(denoising.PEAK_COLUMNS)


# ----------------------------------------------------------------------------- Table 3: the gap table
def test_gap_table_means_inside_the_gaps_with_the_baselines(tmp_path):
    fits = pd.DataFrame([{"dataset": "digits", "design": "conv", "selection": sel, "metric": m, "value": v + k,
                          "status": "ok", "clip_id": f"c{k}"}
                         for k in range(2) for sel in ("oracle", "last")
                         for m, v in (("SNR (gaps)", 1.0), ("SNR", 5.0), ("Spec. SNR", 9.0))])
    failed = fits.iloc[:1].assign(status="failed", value=100.0)
    base = pd.DataFrame([{"dataset": "digits", "design": "ar-interp", "selection": "none", "metric": "SNR (gaps)",
                          "value": 3.0, "status": "ok", "clip_id": "c0"}])
    table = studies.gap_table(pd.concat([fits, failed]), base)
    assert table.loc[("digits", "conv"), ("oracle", "SNR (gaps)")] == 1.5  # failed rows left out
    assert table.loc[("digits", "ar-interp"), ("none", "SNR (gaps)")] == 3.0
    assert "Spec. SNR" not in set(table.columns.get_level_values("metric"))  # whole-clip Spec. SNR: Table 3's
    path = studies.write_gap_table(table, tmp_path)
    assert path == tmp_path / "table3_gaps.csv" and "ar-interp" in path.read_text()
    assert studies.gap_table(fits).shape == (1, 4)  # without baselines
