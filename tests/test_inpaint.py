"""Inpainting (dap.tasks.inpaint, dap.studies.inpainting): masks, masked loss, metrics, a tiny fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dap.core.audio import HOP, N_FFT, SAMPLE_RATE
from dap.engine.fit import FitConfig
from dap.tasks import inpaint
from dap.tasks.inpaint import GapMask, MaskError

TINY = {"widths": (4, 8, 16)}
CFG = dict(lr=1e-3, precision="fp32", progress=False, device="cpu")


def _signal(length: int, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: two partials under a slow envelope, peak 1."""
    t = np.arange(length) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    x = (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t + 1)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = x + 0.01 * rng.standard_normal(length)
    return (x / np.abs(x).max()).astype(np.float32)


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize("length", [16384, 32768])
def test_gaps_respect_the_paper_range_count_and_layout(length):
    lo, hi = round(0.1 * SAMPLE_RATE), round(0.25 * SAMPLE_RATE)
    margin, sep = round(inpaint.MARGIN_S * SAMPLE_RATE), round(inpaint.MIN_SEPARATION_S * SAMPLE_RATE)
    expected = max(1, round(length / SAMPLE_RATE))  # 1 gap per second by default
    for seed in range(200):
        m = inpaint.draw_gaps(length, seed=seed)
        assert m.n_gaps == expected
        assert np.all((m.durations >= lo) & (m.durations <= hi)), m.spans
        assert m.spans[0][0] >= margin and m.spans[-1][1] <= length - margin
        for (_, e0), (s1, _) in zip(m.spans, m.spans[1:]):
            assert s1 - e0 >= sep


def test_gap_count_follows_the_rate_and_durations_cover_the_range():
    assert inpaint.gap_count(16384, 2.0) == 2 and inpaint.gap_count(32768, 2.0) == 4
    assert inpaint.gap_count(4096, 1.0) == 1  # never zero gaps
    m = inpaint.draw_gaps(32768, seed=3, gaps_per_second=2.0)
    assert m.n_gaps == 4
    d = np.concatenate([inpaint.draw_gaps(16384, seed=s).durations for s in range(300)]) / SAMPLE_RATE
    assert d.min() < 0.12 and d.max() > 0.23  # the whole 0.1-0.25 s range is used


def test_gaps_are_reproducible_from_the_seed():
    a, b = inpaint.draw_gaps(32768, seed=7), inpaint.draw_gaps(32768, seed=7)
    assert a == b
    assert len({inpaint.draw_gaps(32768, seed=s).spans for s in range(20)}) == 20


def test_impossible_gaps_raise_a_clear_error():
    with pytest.raises(MaskError, match="do not fit"):
        inpaint.draw_gaps(8192, seed=0, n_gaps=4)
    with pytest.raises(MaskError):
        GapMask(1000, ((100, 300), (200, 400)))  # overlapping


@pytest.mark.parametrize("seed", range(5))
def test_frame_mask_is_consistent_with_the_spans(seed):
    length = 32768
    m = inpaint.draw_gaps(length, seed=seed)
    frames = m.frame_mask("centre")
    assert frames.shape == (1, 1, 1, length // HOP) and frames.dtype == torch.float32
    f = frames.reshape(-1).numpy()
    observed = m.observed()
    for t in range(f.size):  # a frame is masked exactly when its centre sample is in a gap
        assert f[t] == float(observed[t * HOP])
    assert (f == 0).sum() == pytest.approx(m.durations.sum() / HOP, abs=m.n_gaps)
    w = m.frame_mask("window").reshape(-1).numpy()
    assert np.all(w <= f)  # the window rule masks a superset
    for t in np.flatnonzero(w):  # ... and every frame it keeps sees only observed samples
        lo, hi = max(0, t * HOP - N_FFT // 2), min(length, t * HOP + N_FFT // 2 + 1)
        assert observed[lo:hi].all()


def test_mask_text_round_trip_and_observation():
    m = inpaint.draw_gaps(16384, seed=1, gaps_per_second=2.0)
    assert GapMask.from_string(m.to_string(), 16384) == m
    x = _signal(16384)
    y = inpaint.apply_gaps(x, m)
    keep = m.observed()
    assert np.all(y[~keep] == 0) and np.array_equal(y[keep], x[keep])
    assert m.masked_fraction == pytest.approx((~keep).mean())


# ----------------------------------------------------------------------------- loss
def test_masked_mse_ignores_masked_entries_and_averages_over_observed_ones():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 2, 8, 10, generator=g)
    pred = torch.randn(1, 2, 8, 10, generator=g, requires_grad=True)
    mask = torch.ones(1, 1, 1, 10)
    mask[..., 3:6] = 0
    loss = inpaint.masked_mse(pred, target, mask)
    value = float(loss.detach())
    keep = mask.expand_as(pred).bool()
    assert value == pytest.approx(float(((pred.detach() - target)[keep] ** 2).mean()), rel=1e-6)
    changed = pred.detach().clone()
    changed[..., 3:6] += 100.0  # anything in the masked frames
    assert float(inpaint.masked_mse(changed, target, mask)) == pytest.approx(value, rel=1e-6)
    loss.backward()
    assert torch.all(pred.grad[..., 3:6] == 0) and torch.any(pred.grad[..., :3] != 0)
    with pytest.raises(MaskError):
        inpaint.masked_mse(pred, target, torch.zeros(1, 1, 1, 10))


# ----------------------------------------------------------------------------- metrics
def test_evaluate_whole_clip_and_gap_metrics():
    x = _signal(16384)
    m = inpaint.draw_gaps(16384, seed=2)
    perfect = inpaint.evaluate(x, x, m)
    assert math.isinf(perfect["Spec. SNR"]) and math.isinf(perfect["Spec. SNR (gaps)"])
    assert perfect["Env. Dist."] == 0 and perfect["Env. Dist. (gaps)"] == 0
    zero_fill = inpaint.evaluate(x, inpaint.apply_gaps(x, m), m)
    assert zero_fill["SNR (gaps)"] == pytest.approx(0.0, abs=1e-9)  # nothing restored in the gaps
    assert zero_fill["Spec. SNR (gaps)"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < zero_fill["Spec. SNR"] < 20 and zero_fill["Env. Dist. (gaps)"] > zero_fill["Env. Dist."]
    silent = x.copy()
    silent[~m.observed()] = 0  # nothing to hear in the gaps: gap ratios are undefined, not an error
    out = inpaint.evaluate(silent, silent * 0.5, m)
    assert math.isnan(out["Spec. SNR (gaps)"]) and math.isnan(out["SNR (gaps)"]) and math.isfinite(out["Spec. SNR"])


# ----------------------------------------------------------------------------- fits
def test_tiny_restore_tracks_and_records_the_mask():
    length = 8192  # 128 frames: the smallest clip that holds a 0.25 s gap with its margins
    x = _signal(length)
    m = inpaint.draw_gaps(length, seed=0)
    res = inpaint.restore(inpaint.apply_gaps(x, m), m, "conv", FitConfig(iterations=3, **CFG),
                          seed=0, clean=x, prior_opts=TINY)
    assert res.ok and res.outputs["oracle"].shape == (1, length)
    assert {"snr", "snr_gaps", "ema_snr"} <= set(res.history.columns)
    assert GapMask.from_string(res.extra["gaps"], length) == m
    assert res.extra["masked_frames"] == int((m.frame_mask() == 0).sum()) > 0
    with pytest.raises(MaskError):
        inpaint.restore(x[:4096], m, "conv", FitConfig(iterations=1, **CFG), prior_opts=TINY)


def test_study_produces_rows_with_the_mask(tmp_path, monkeypatch):
    monkeypatch.setenv("DAP_PROGRESS", "off")  # no progress bars in the test output
    from dap.data.embedded import EMBEDDED_ROOT

    assert (EMBEDDED_ROOT / "manifest.csv").exists(), "the embedded data is committed: its manifest is missing"
    from dap import studies
    from dap.config import profiles
    from dap.core.store import ResultStore

    p = profiles.resolve("04_table3_inpainting", "smoke", datasets=("digits",), designs=("conv",), iterations=2, prior_opts=TINY)
    store = ResultStore(tmp_path)
    rows = studies.inpainting_study(store, p, progress=lambda *_: None)
    assert set(rows["status"]) == {"ok"}
    assert {"Spec. SNR", "Env. Dist.", "Spec. SNR (gaps)", "Env. Dist. (gaps)", "SNR"} <= set(rows["metric"])
    assert set(rows["selection"]) == {"oracle", "last", "ema"} and set(rows["dataset"]) == {"digits"}
    checks = studies.mask_checks(rows)
    assert checks["n_masks"] == 1 and checks["min_gaps"] == 1
    assert 0.1 <= checks["shortest_gap_s"] <= checks["longest_gap_s"] <= 0.25
    again = studies.inpainting_study(store, p, progress=lambda *_: pytest.fail("refit"))  # resumes
    assert len(again) == len(rows)


def test_a_small_prior_fills_a_real_gap_better_than_the_trivial_answer():
    """The trivial answer (the gapped observation: silence in the gap) scores 0 dB inside the gap; a
    small prior fitted to a real embedded piano clip restores more than that there (oracle iterate, as
    Table 3). Not asserted: the whole clip, where the trivial answer keeps the observed samples exactly
    and a prior at this budget loses (results/reference/SUMMARY.md of commit 10ead34)."""
    from dap.studies.common import load_normalised

    clip = load_normalised("piano", 1, 0, "embedded", max_samples=8192)[0]
    m = inpaint.draw_gaps(len(clip.audio), seed=0)
    observed = inpaint.apply_gaps(clip.audio, m)
    res = inpaint.restore(observed, m, "dilated_exp", FitConfig(iterations=300, **CFG), seed=0, clean=clip.audio,
                          prior_opts={"widths": (8, 16, 32)})
    prior, trivial = (inpaint.evaluate(clip.audio, est, m) for est in (res.outputs["oracle"][0], observed))
    assert trivial["Spec. SNR (gaps)"] == pytest.approx(0.0, abs=1e-6) and trivial["SNR (gaps)"] == pytest.approx(0.0)
    # measured: +1.74 dB spectral and +1.24 dB waveform SNR inside the gap
    assert prior["Spec. SNR (gaps)"] > trivial["Spec. SNR (gaps)"] + 1.0, prior
    assert prior["SNR (gaps)"] > trivial["SNR (gaps)"] + 0.5, prior


@pytest.fixture(scope="module")
def speech_fit():
    """A small prior fitted to a real embedded speech clip with Table 3's gaps (0.512 s, oracle iterate),
    with the trivial answer (the gapped observation) and the STFT interpolation on the same gaps."""
    from dap.baselines import stft_interpolation
    from dap.studies.common import load_normalised

    clip = load_normalised("speech", 1, 0, "embedded", max_samples=8192)[0]
    m = inpaint.draw_gaps(len(clip.audio), seed=0)
    observed = inpaint.apply_gaps(clip.audio, m)
    res = inpaint.restore(observed, m, "dilated_exp", FitConfig(iterations=300, **CFG), seed=0, clean=clip.audio,
                          prior_opts={"widths": (8, 16, 32)})
    return {name: inpaint.evaluate(clip.audio, est, m) for name, est in
            (("prior", res.outputs["oracle"][0]), ("gapped", observed), ("stft", stft_interpolation(observed, m.spans)))}


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="at a test's budget (widths 8/16/32, 300 iterations) the prior keeps less of "
                   "the clip than leaving the gaps silent: whole-clip Spec. SNR 2.2 vs 3.8 dB (measured); the paper's "
                   "widths beat the gapped input on Table 3's speech clips (results/reference/table3.md of commit 10ead34)")
def test_a_small_prior_beats_the_gapped_input_on_the_whole_clip(speech_fit):
    """Table 3 scores the whole clip (speech, digits): there the trivial answer keeps every observed
    sample exactly, and a method must restore the gaps without spoiling the rest."""
    assert speech_fit["prior"]["Spec. SNR"] > speech_fit["gapped"]["Spec. SNR"]
    assert speech_fit["prior"]["Env. Dist."] < speech_fit["gapped"]["Env. Dist."]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the STFT interpolation (4 ms per clip) fills the gaps better than the prior: "
                   "Spec. SNR 6.2 vs 2.2 dB on the whole clip and 2.4 vs 0.4 dB inside the gaps here (measured), and "
                   "2-3 dB above every design at the paper's widths in the reference Table 3")
def test_a_small_prior_beats_the_stft_interpolation(speech_fit):
    assert speech_fit["prior"]["Spec. SNR"] > speech_fit["stft"]["Spec. SNR"]
    assert speech_fit["prior"]["Spec. SNR (gaps)"] > speech_fit["stft"]["Spec. SNR (gaps)"]


@pytest.mark.slow
def test_a_small_prior_fills_speech_gaps_better_than_silence(speech_fit):
    """What the prior does reach at this budget on speech: more than silence inside the gaps
    (measured +0.4 dB spectral SNR), though less than the STFT interpolation (above)."""
    assert speech_fit["prior"]["Spec. SNR (gaps)"] > speech_fit["gapped"]["Spec. SNR (gaps)"] + 0.2
