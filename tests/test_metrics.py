"""Tests of dap.metrics: hand-computed values, shape contracts and the documented errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dap import metrics as M
from dap.core.errors import AudioError, DapError

SR = 16000


def DB(ratio: float) -> float:
    """Power ratio in dB, for readable expected values: DB(25) == 13.979..."""
    return 10.0 * math.log10(ratio)


def _speech_like(seconds: float = 1.5, f0: float = 140.0) -> np.ndarray:
    """Harmonic tone (14 partials, 1/k roll-off) with 4 syllable-like bursts per second."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.clip(np.sin(2 * np.pi * 2.0 * t), 0.0, None) ** 2
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 15)) * env
    return 0.5 * x / np.max(np.abs(x))


# ----------------------------------------------------------------------------- SNR / PSNR
def test_snr_hand_computed():
    ref = np.array([1.0, 0.0, 0.0, 0.0])
    est = np.array([0.9, 0.1, 0.1, 0.1])  # error energy 4 * 0.01 = 0.04
    assert M.snr(ref, est) == pytest.approx(DB(1 / 0.04), abs=1e-9)
    assert M.snr(ref, [0.5, 0, 0, 0]) == pytest.approx(DB(4), abs=1e-9)


def test_snr_edge_values_and_torch_input():
    ref = np.array([1.0, -2.0, 3.0])
    assert M.snr(ref, np.zeros(3)) == pytest.approx(0.0, abs=1e-12)  # silent estimate: 0 dB
    assert M.snr(ref, ref) == math.inf
    est = ref + np.array([0.1, 0.0, -0.2])
    got = M.snr(torch.tensor(ref, dtype=torch.float64), torch.tensor(est, dtype=torch.float64))
    assert isinstance(got, float)
    assert got == pytest.approx(M.snr(ref, est), abs=1e-12)


def test_psnr_hand_computed():
    ref = np.array([2.0, 0.0, 0.0, -1.0])
    est = ref + np.array([1.0, 0.0, 0.0, 0.0])  # MSE 1/4, peak^2 = 4
    assert M.psnr(ref, est) == pytest.approx(DB(16), abs=1e-9)
    assert M.snr(ref, est) == pytest.approx(DB(5), abs=1e-9)  # different definition, different value
    assert M.psnr(ref, ref) == math.inf
    assert "max|ref|^2" in M.PSNR_DEFINITION and M.DEFINITIONS["PSNR"] == M.PSNR_DEFINITION


@pytest.mark.parametrize("fn", [M.snr, M.psnr, M.spectral_snr])
def test_silent_reference_is_undefined(fn):
    with pytest.raises(M.UndefinedMetric, match="silent"):
        fn(np.zeros(400), np.ones(400))


@pytest.mark.parametrize("fn", [M.snr, M.psnr, M.spectral_snr, M.envelope_distance, M.pesq])
def test_bad_inputs_raise_clear_errors(fn):
    x = _speech_like(0.5)
    with pytest.raises(AudioError, match=r"8000 .*7999|has 8000 samples but est has 7999"):
        fn(x, x[:-1])
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(AudioError, match="NaN or Inf"):
        fn(x, bad)
    with pytest.raises(AudioError, match="1-D"):
        fn(x[None], x[None])


def test_errors_are_value_errors_and_dap_errors():
    assert issubclass(M.UndefinedMetric, AudioError) and issubclass(M.UndefinedMetric, ValueError)
    assert issubclass(M.MetricError, DapError) and issubclass(M.MetricError, ValueError)


# ----------------------------------------------------------------------------- spectral SNR / envelope
def test_spectral_snr_of_scaled_and_flipped_signal():
    x = _speech_like(0.5)
    # |S(a x)| = |a| |S(x)|  ->  10 log10(1 / (1 - |a|)^2)
    assert M.spectral_snr(x, 0.5 * x) == pytest.approx(DB(4), abs=1e-6)
    assert M.spectral_snr(x, 0.9 * x) == pytest.approx(DB(100), abs=1e-6)
    assert M.spectral_snr(x, -x) == math.inf  # phase is ignored
    assert M.spectral_snr(x, np.zeros_like(x)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(AudioError, match="needs more than 128"):
        M.spectral_snr(x[:128], x[:128])


def test_envelope_distance_known_values():
    n = np.arange(16000)
    sine = np.sin(2 * np.pi * 440 * n / SR)  # 440 whole periods: flat Hilbert envelope of 1
    assert M.envelope_distance(sine, sine) == 0.0
    assert M.envelope_distance(sine, 0.5 * sine) == pytest.approx(0.5, abs=1e-9)
    # Envelope ignores phase: a cosine has the same envelope as the sine.
    assert M.envelope_distance(sine, np.cos(2 * np.pi * 440 * n / SR)) == pytest.approx(0.0, abs=1e-9)
    assert M.envelope_distance(np.zeros(100), np.zeros(100)) == 0.0  # defined for silence


# ----------------------------------------------------------------------------- PESQ
def test_pesq_clean_high_noisy_lower():
    x = _speech_like()
    noisy = x + 0.02 * np.random.default_rng(0).standard_normal(x.size)
    clean_wb = M.pesq(x, x)
    assert clean_wb > 4.0
    assert M.pesq(x, noisy) < clean_wb - 1.0
    assert M.pesq(x, x, mode="nb") > 4.0
    assert "wide-band" in M.PESQ_MODE_NOTE


def test_pesq_failures():
    x = _speech_like()
    with pytest.raises(M.UndefinedMetric, match="estimate is silent"):
        M.pesq(x, np.zeros_like(x))
    assert math.isnan(M.pesq(x, np.zeros_like(x), on_error="nan"))
    rumble = np.sin(2 * np.pi * 20.0 * np.arange(x.size) / SR)  # 20 Hz: below the speech band
    with pytest.raises(M.UndefinedMetric, match="No utterances"):
        M.pesq(rumble, rumble)
    assert math.isnan(M.pesq(rumble, rumble, on_error="nan"))
    with pytest.raises(AudioError, match="at least 0.25 s"):
        M.pesq(x[:3000], x[:3000], on_error="nan")  # misuse still raises
    with pytest.raises(M.MetricError, match="mode"):
        M.pesq(x, x, mode="xx")
    with pytest.raises(M.MetricError, match="wide-band mode needs sr=16000"):
        M.pesq(x, x, sr=8000, mode="wb")
    with pytest.raises(M.MetricError, match="on_error"):
        M.pesq(x, x, on_error="ignore")


# ----------------------------------------------------------------------------- BSS Eval
@pytest.fixture(scope="module")
def two_sources() -> tuple[np.ndarray, np.ndarray]:
    """(2, 2.5 s) references and slightly noisy estimates of them."""
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, int(2.5 * SR)))
    return refs, refs + 0.01 * rng.standard_normal(refs.shape)


def test_bss_eval_whole_clip(two_sources):
    refs, ests = two_sources
    good = M.bss_eval(refs, ests)
    assert set(good) == {"SDR", "SIR", "SAR"}
    assert all(v.shape == (2,) for v in good.values())
    assert np.all(good["SDR"] > 35)  # noise at -40 dB
    swapped = M.bss_eval(refs, ests[::-1])
    assert np.all(swapped["SDR"] < 0) and np.all(swapped["SIR"] < 0)


def test_bss_eval_windows_and_silent_window(two_sources):
    refs, ests = two_sources
    out = M.bss_eval(refs, ests, window=SR)
    assert all(v.shape == (2, 2) for v in out.values())  # 2.5 s -> 2 windows, partial one dropped
    assert np.all(out["SDR"] > 35)
    assert M.bss_eval(refs, ests, window=SR, hop=SR // 2)["SDR"].shape == (2, 4)
    refs2 = refs.copy()
    refs2[1, SR:2 * SR] = 0.0  # second window of source 1 silent -> NaN for all sources there
    sil = M.bss_eval(refs2, ests, window=SR)["SDR"]
    assert np.all(np.isnan(sil[:, 1])) and np.all(np.isfinite(sil[:, 0]))


def test_bss_eval_errors(two_sources):
    refs, ests = two_sources
    dead = ests.copy()
    dead[0] = 0.0
    with pytest.raises(M.UndefinedMetric, match=r"ests\[0\] is all zeros"):
        M.bss_eval(refs, dead)
    nan = M.bss_eval(refs, dead, window=SR, on_silent="nan")
    assert nan["SIR"].shape == (2, 2) and np.all(np.isnan(nan["SIR"]))
    with pytest.raises(M.MetricError, match="longer than the clip"):
        M.bss_eval(refs, ests, window=3 * SR)
    with pytest.raises(M.MetricError, match="positive integer"):
        M.bss_eval(refs, ests, window=0)
    with pytest.raises(AudioError, match="must match"):
        M.bss_eval(refs, ests[:, :-1])
    with pytest.raises(AudioError, match="n_sources, L"):
        M.bss_eval(refs[0], ests[0])


def test_best_permutation(two_sources):
    refs, ests = two_sources
    assert M.best_permutation(refs, ests) == (0, 1)
    assert M.best_permutation(refs, ests[::-1]) == (1, 0)
    assert M.best_permutation(refs, ests[::-1], criterion="sdr") == (1, 0)
    rng = np.random.default_rng(2)
    three = rng.standard_normal((3, 4000))
    shuffled = (three + 0.3 * rng.standard_normal(three.shape))[[2, 0, 1]]
    perm = M.best_permutation(three, shuffled)
    assert perm == (1, 2, 0)  # ests[perm[i]] estimates refs[i]
    np.testing.assert_array_equal(shuffled[list(perm)], shuffled[[1, 2, 0]])
    assert M.snr(three[0], shuffled[perm[0]]) > 5


# ----------------------------------------------------------------------------- PES / EPS
# frame = 4 samples:   F0 target silent | F1 estimate silent | F2 both silent | F3 both active | partial
TARGET = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0], float)
ESTIMATE = np.array([.1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 5], float)


def test_pes_eps_hand_computed():
    f0, f2 = DB(0.01 + 1e-12), DB(1e-12)  # -20 dB, -120 dB
    assert M.pes(TARGET, ESTIMATE, frame=4) == pytest.approx((f0 + f2) / 2, abs=1e-9)  # partial frame skipped
    assert M.eps(TARGET, ESTIMATE, frame=4) == pytest.approx(DB(4 + 1e-12), abs=1e-9)  # F1 only
    assert M.eps(TARGET, ESTIMATE, frame=4, count_silent_targets=True) == pytest.approx(
        (DB(4 + 1e-12) + f2) / 2, abs=1e-9)
    assert M.pes_eps_counts(TARGET, ESTIMATE, frame=4) == {
        "n_frames": 4, "n_pes_frames": 2, "n_eps_frames": 1, "n_eps_frames_incl_silent_targets": 2}


def test_pes_eps_undefined_is_nan_and_default_frame():
    x = np.ones(int(2.5 * SR))
    assert math.isnan(M.pes(x, x)) and math.isnan(M.eps(x, x))
    assert M.pes_eps_counts(x, x) == {"n_frames": 2, "n_pes_frames": 0, "n_eps_frames": 0,
                                      "n_eps_frames_incl_silent_targets": 0}
    target = x.copy()
    target[:SR] = 0.0
    assert M.pes(target, x) == pytest.approx(DB(SR), abs=1e-9)  # estimate energy 16000 in frame 0
    tiny = target.copy()
    tiny[5] = 1e-9  # not exactly zero: frame 0 is no longer silent
    assert math.isnan(M.pes(tiny, x))


def test_pes_eps_errors():
    with pytest.raises(AudioError, match="shorter than one frame"):
        M.pes(np.ones(100), np.ones(100))
    with pytest.raises(M.MetricError, match="frame must be a positive integer"):
        M.eps(TARGET, ESTIMATE, frame=0)
    with pytest.raises(M.MetricError, match="frame must be a positive integer"):
        M.eps(TARGET, ESTIMATE, frame=4.0)
    with pytest.raises(AudioError, match="target has 18 samples but estimate has 17"):
        M.pes_eps_counts(TARGET, ESTIMATE[:-1], frame=4)


def test_metric_info():
    info = M.metric_info()
    assert {"SNR", "PSNR", "PESQ", "SSNR", "ENV", "SDR", "SIR", "SAR", "PES", "EPS"} <= set(info)
    info["SNR"] = "changed"
    assert M.metric_info("SNR") != "changed"  # a copy, not the module's dict
    with pytest.raises(M.MetricError, match="unknown metric"):
        M.metric_info("MOS")
