"""Classical baselines (dap.baselines): each beats its trivial input on an easy case, refuses bad
input, and the studies' smoke profiles write their rows beside the fits'."""

import numpy as np
import pandas as pd
import pytest

from dap import baselines, metrics, studies
from dap.config import profiles
from dap.report import tables as report
from dap.core.errors import AudioError
from dap.core.store import ROW_COLUMNS, ResultStore
from dap.tasks import separate

SR = 16000


def tone(n=16384, f=440.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * f * np.arange(n) / SR)).astype(np.float32)


def white(n=16384, sigma=0.1, seed=0):
    return (sigma * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_wiener_with_the_known_noise_raises_the_snr_by_several_db():
    clean, noise = tone(), white()
    noisy = clean + noise
    gain = metrics.snr(clean, baselines.wiener_oracle(noisy, noise)) - metrics.snr(clean, noisy)
    assert gain > 10


def test_spectral_gating_cleans_a_tone_burst_in_strong_white_noise():
    # gating suits a sparse signal at a low SNR: each frequency's threshold comes from the clip's own
    # statistics, so a signal present in a band most of the time is gated as if it were noise
    t = np.arange(16384) / SR
    clean = tone(f=1000.0) * (np.abs(t - 0.5) < 0.05)  # 100 ms burst
    noisy = clean + white(sigma=0.1)
    assert metrics.snr(clean, noisy) < 2
    assert metrics.snr(clean, baselines.spectral_gating(noisy)) > metrics.snr(clean, noisy) + 2


def test_stft_interpolation_of_a_gap_in_a_steady_tone_beats_zero_filling():
    clean = tone()
    spans = [(6000, 7600)]
    observed = clean.copy()
    observed[6000:7600] = 0
    est = baselines.stft_interpolation(observed, spans)
    assert metrics.snr(clean[6000:7600], observed[6000:7600]) == 0.0  # zero filling: 0 dB inside the gap
    assert metrics.snr(clean[6000:7600], est[6000:7600]) > 20
    assert np.array_equal(est[:6000], observed[:6000]) and np.array_equal(est[7600:], observed[7600:])


def test_ar_interpolation_of_a_gap_in_a_steady_tone_beats_zero_filling():
    clean = tone()
    observed = clean.copy()
    observed[6000:7600] = 0
    est = baselines.ar_interpolation(observed, [(6000, 7600)])
    assert metrics.snr(clean[6000:7600], est[6000:7600]) > 6
    assert np.array_equal(est[:6000], observed[:6000]) and np.array_equal(est[7600:], observed[7600:])
    edge = observed.copy()
    edge[:1000] = 0  # a gap at the clip's start is extrapolated backwards from its right side only
    assert metrics.snr(clean[:1000], baselines.ar_interpolation(edge, [(0, 1000)])[:1000]) > 6


def test_hpss_separates_a_sine_from_clicks_better_than_the_trivial_answers():
    piano = tone(amp=0.3).astype(np.float64)
    drums = np.zeros_like(piano)
    drums[::2000] = 1.0
    drums = np.convolve(drums, np.exp(-np.arange(64) / 8.0), "same")
    drums *= np.sqrt(np.sum(piano ** 2) / np.sum(drums ** 2))  # a 0 dB mixture
    refs = np.stack([piano, drums])
    est = baselines.hpss(refs.sum(0).astype(np.float32))
    assert est.shape == refs.shape
    ours = separate.evaluate(refs, est)
    trivial = separate.evaluate(refs, separate.trivial_estimates(refs)["mixture_to_louder"])
    louder = "piano" if np.isfinite(trivial["piano|SIR"]) else "drums"
    assert ours[f"{louder}|SIR"] > trivial[f"{louder}|SIR"] + 10
    assert ours["permutation"] == 0.0  # harmonic = piano, percussive = drums


def test_bad_input_gets_a_clear_error():
    with pytest.raises(baselines.BaselineError, match="same length"):
        baselines.wiener_oracle(tone(), white(n=100))
    with pytest.raises(baselines.BaselineError, match="outside"):
        baselines.stft_interpolation(tone(), [(16000, 17000)])
    with pytest.raises(baselines.BaselineError, match="no observed context"):
        baselines.stft_interpolation(np.zeros(16384, np.float32), [(0, 16384)])
    with pytest.raises(baselines.BaselineError, match="overlaps"):
        baselines.ar_interpolation(tone(), [(100, 500), (400, 900)])
    with pytest.raises(baselines.BaselineError, match="observed samples on both sides"):
        baselines.ar_interpolation(tone(n=1000), [(10, 990)])
    with pytest.raises(AudioError):
        baselines.hpss(np.full(16384, np.nan, np.float32))
    with pytest.raises(baselines.BaselineError, match="no baseline for task"):
        baselines.baselines_for("restore")
    assert baselines.baselines_for("denoise") == ["noisy-input", "wiener-oracle", "noisereduce"]


def test_timed_returns_the_result_and_its_cost():
    out, seconds = baselines.timed(baselines.hpss, tone())
    assert out.shape == (2, 16384) and 0 < seconds < 60


@pytest.mark.parametrize("notebook, run, expected", [
    ("02_table1_gaussian_denoising", lambda s, p: studies.denoising_baselines(s, p, "gaussian"),
     {"noisy-input", "wiener-oracle", "noisereduce"}),
    ("03_table2_environmental_denoising", lambda s, p: studies.denoising_baselines(s, p, "environmental"),
     {"noisy-input", "wiener-oracle", "noisereduce"}),
    ("04_table3_inpainting", studies.inpainting_baselines, {"gapped-input", "stft-interp", "ar-interp"}),
    ("05_table4_separation", studies.separation_baselines, {"hpss"}),
])
def test_the_smoke_profiles_write_baseline_rows_beside_the_fits(tmp_path, notebook, run, expected):
    p = profiles.resolve(notebook, "smoke")
    store = ResultStore(tmp_path)
    rows = run(store, p)
    assert set(rows["design"]) == expected and set(rows["selection"]) == {"none"}
    assert (rows["status"] == "ok").all() and list(rows.columns[:len(ROW_COLUMNS)]) == ROW_COLUMNS
    trivial = rows["design"].isin(["noisy-input", "gapped-input"])  # returns its input: ~0 s
    assert (pd.to_numeric(rows.loc[~trivial, "seconds"]) > 0).all()
    value = rows[rows["status"] == "ok"].set_index(["design", "metric"])["value"]
    if notebook.startswith(("02", "03")):  # the oracle Wiener filter beats the trivial answer
        assert value[("wiener-oracle", "SNR")].mean() > value[("noisy-input", "SNR")].mean()
    assert (tmp_path / studies.BASELINE_FILE).exists() and not (tmp_path / "rows.csv").exists()
    if notebook == "04_table3_inpainting":
        assert {"SNR (gaps)", "Spec. SNR", "Env. Dist."} <= set(rows["metric"])
        assert np.allclose(value[("gapped-input", "SNR (gaps)")], 0.0, atol=1e-6)  # silence in the gaps: 0 dB
    if notebook == "05_table4_separation":
        assert {"piano", "drums"} <= set(rows["dataset"]) and "SIR" in set(rows["metric"])
    again = run(ResultStore(tmp_path), p)  # resumes: nothing recomputed
    assert sorted(again["fit_id"]) == sorted(rows["fit_id"])
    assert list(pd.to_numeric(again.sort_values(["fit_id", "metric"])["seconds"])) == \
        list(pd.to_numeric(rows.sort_values(["fit_id", "metric"])["seconds"]))


def test_tables_show_baselines_as_extra_rows_never_ranked(tmp_path):
    fits = pd.DataFrame([{"fit_id": f"{d}{k}", "design": d, "dataset": "digits", "clip_id": f"c{k}", "metric": m,
                          "selection": "oracle", "value": 1.0 + k + (d == "conv"), "status": "ok"}
                         for d in ("conv", "dilated_exp_dense") for k in range(4) for m in ("PESQ", "PSNR")])
    base = fits[fits.design == "conv"].assign(design="wiener-oracle", selection="none", value=99.0,
                                              fit_id=lambda d: "w" + d["fit_id"])
    out = report.publish_table(fits, "table1", tmp_path, "caption", baselines=base)
    md = (tmp_path / "table1.md").read_text()
    baseline_part = md.split("Classical baselines")[1]
    assert "wiener-oracle" in baseline_part and "99.00" in baseline_part
    ranking = md.split("Best design as in the paper")[1].split("\n")[0]
    assert "wiener" not in ranking and "Convolution" in ranking  # the best of the designs, not the baseline
    assert set(out.loc[out["selection"] == "none", "design"]) == {"wiener-oracle"}


def test_a_baseline_that_fails_on_a_clip_is_recorded_as_failed(tmp_path):
    from dap.engine.grid import Grid

    clips = studies.load_normalised("digits", 2, 0, "embedded", max_samples=16384)

    def flaky(clip):
        if clip.id == clips[0].id:
            raise baselines.BaselineError("no observed context")
        return clip.audio

    rows = studies.common.run_baselines(ResultStore(tmp_path, studies.BASELINE_FILE), Grid("t", {}, "smoke"), clips,
                                        {"flaky": flaky}, lambda c, est: {"SNR": metrics.snr(c.audio, est)},
                                        progress=lambda *_: None)
    failed = rows[rows["status"] == "failed"]
    assert list(failed["clip_id"]) == [clips[0].id] and "no observed context" in failed["error"].iloc[0]
    assert rows.loc[rows["status"] == "ok", "value"].iloc[0] == np.inf  # the other clip still ran
