"""Blind noise-level estimates from a noisy observation alone, in the units of the denoising loss.

The denoising fit minimises ``mean((P - Y)^2)`` over the two real channels of the noisy STFT
``Y`` (2, F, T) (:mod:`dap.tasks.denoise`). If the prior reproduced the clean STFT exactly, the
residual would be the STFT of the noise ``N``, and the loss its mean power per real entry:

    noise floor = mean_{f,t} E|N(f, t)|^2 / 2.

For white noise of variance ``sigma^2``, every coefficient has ``E|N(f, t)|^2 = sigma^2 sum_n w(n)^2``
(the window's energy: periodic Hann of 1023 points, ``sum w^2 = 3 * 1023 / 8 = 383.6``), so the
floor is ``sigma^2 * 3 * 1023 / 16``. ``docs/stopping.md`` derives it and gives the measured error of
the two estimators below:

``white``     robust quantile of ``|Y|^2`` in the top band (5.5-7.5 kHz), where speech is weak:
              under noise alone ``|Y|^2 / E|N|^2`` is Exp(1), so its ``q``-quantile is
              ``-ln(1 - q)`` and the band's quantile divided by that is ``E|N|^2``, flat over F;
``coloured``  minimum statistics per frequency bin (after R. Martin, 2001): the periodogram
              smoothed over time and neighbouring bins, a low quantile of it over the frames,
              divided by the same statistic measured on unit white noise of the same shape
              (the bias of a low quantile, calibrated, not guessed).

``auto`` picks one from the observation: ``white`` when the ``coloured`` estimate is flat between
2.5-4.5 kHz and 5.5-7.5 kHz (within :data:`FLAT_DB`), else ``coloured``. Minimum statistics needs
moments where the signal is absent from a bin; in the loudest second of continuous speech there are
few, so ``coloured`` overestimates white noise at high input SNR (speech leaks into its low bins),
while the top band stays a clean view of white noise. Errors measured: docs/stopping.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dap.core.audio import N_FFT, SAMPLE_RATE, check_audio, stft
from dap.core.errors import DapError

#: Estimators :func:`estimate_noise` knows.
NOISE_KINDS = ("auto", "white", "coloured")
#: Top band of the white estimator (Hz): above most speech energy, below a resampler's roll-off.
WHITE_BAND_HZ = (5500.0, 7500.0)
#: Quantile of the white estimator (of |Y|^2 over the band): low, so that up to ~75 % of the band's
#: cells may hold signal before the estimate moves much.
WHITE_QUANTILE = 0.25
#: Minimum statistics: smoothing span over time (frames of hop 64: 32 = 0.128 s) and frequency
#: (bins either side), and the quantile over frames taken of the smoothed power.
SMOOTH_FRAMES = 32
SMOOTH_BINS = 2
COLOURED_QUANTILE = 0.05
#: auto: the coloured estimate counts as flat (white noise) when its median level over 2.5-4.5 kHz
#: is within this many dB of its level over 5.5-7.5 kHz (white noise + speech: <= 1.2 dB measured on
#: the embedded speech at 0-20 dB; traffic / living-room recordings: 8-53 dB).
FLAT_DB = 2.0
FLAT_BANDS_HZ = ((2500.0, 4500.0), (5500.0, 7500.0))
#: No estimate goes below this fraction of the observation's power (-100 dB): a noise-free or
#: band-limited input then gives a tiny positive floor that the fit never reaches (it runs to its cap).
MIN_RELATIVE_LEVEL = 1e-10
#: Shortest observation estimated (the shortest fit window, 1024 samples = 16 frames; shorter
#: estimates are noisier: docs/stopping.md measures 1.024-s clips).
MIN_SAMPLES = 1024
#: auto: a coloured estimate implying an input SNR below this (noise 10 x the signal) has taken a
#: stationary signal (a steady tone) for noise; the white estimate is used instead.
MIN_COLOURED_SNR_DB = -10.0


class NoiseEstimateError(DapError, ValueError):
    """The observation cannot give a noise estimate (too short, or an unknown estimator)."""


def window_energy(n_fft: int = N_FFT) -> float:
    """``sum_n w(n)^2`` of the STFT's periodic Hann window (383.625 for 1023 points)."""
    n = np.arange(n_fft)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    return float(np.sum(w ** 2))


def loss_floor_from_variance(sigma2: float) -> float:
    """Expected denoising loss of a perfect fit under white noise of variance ``sigma2``:
    ``sigma2 * sum w^2 / 2`` (the loss averages over real and imaginary parts)."""
    return float(sigma2) * window_energy() / 2.0


@dataclass(frozen=True)
class NoiseEstimate:
    """A noise estimate of one observation.

    psd: ``(F,)`` expected power ``E|N(f, t)|^2`` of one STFT coefficient per frequency bin.
    kind: the estimator that produced it; signal_power: ``mean |Y|^2`` of the observation.
    """

    kind: str
    psd: np.ndarray
    signal_power: float

    @property
    def loss_floor(self) -> float:
        """The expected loss of a perfect fit (loss units): ``mean_f psd / 2``."""
        return float(np.mean(self.psd)) / 2.0

    @property
    def sigma(self) -> float:
        """Standard deviation of white noise with the same loss floor (waveform units)."""
        return math.sqrt(2.0 * self.loss_floor / window_energy())

    @property
    def level_db(self) -> float:
        """Noise power in dB relative to a full-scale (variance 1) signal: ``20 log10 sigma``."""
        return 20.0 * math.log10(max(self.sigma, 1e-30))

    @property
    def input_snr_db(self) -> float:
        """The observation's SNR implied by the estimate: (power - noise) / noise, in dB."""
        noise = float(np.mean(self.psd))
        return 10.0 * math.log10(max(self.signal_power - noise, 1e-30) / max(noise, 1e-30))

    def describe(self) -> str:
        return (f"noise ~ {self.level_db:.1f} dB re full scale (white-equivalent sigma {self.sigma:.4f}; "
                f"{self.kind} estimate), input SNR ~ {self.input_snr_db:.1f} dB")


def power_spectrogram(x: np.ndarray) -> np.ndarray:
    """``|STFT(x)|^2`` ``(F, T)`` float64 with the STFT of the denoising loss (:func:`dap.core.audio.stft`)."""
    spec = stft(x).double().numpy()
    return spec[0] ** 2 + spec[1] ** 2


def true_loss_floor(noisy: np.ndarray, clean: np.ndarray) -> float:
    """The noise floor an oracle knows: ``mean((STFT(noisy) - STFT(clean))^2)`` (loss units)."""
    return float(np.mean(power_spectrogram(np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)))) / 2.0


def estimate_white(x: np.ndarray, band_hz: tuple[float, float] = WHITE_BAND_HZ,
                   quantile: float = WHITE_QUANTILE, sr: int = SAMPLE_RATE) -> NoiseEstimate:
    """White-noise estimate from the top band of ``x`` ``(L,)``: a flat ``psd`` ``(F,)``."""
    power = _power(x)
    f = np.arange(power.shape[0]) * sr / N_FFT
    band = power[(f >= band_hz[0]) & (f <= band_hz[1])]
    if band.size == 0:
        raise NoiseEstimateError(f"no STFT bins in {band_hz} Hz at {sr} Hz")
    level = float(np.quantile(band, quantile)) / -math.log1p(-quantile)
    level = max(level, MIN_RELATIVE_LEVEL * float(power.mean()))
    return NoiseEstimate("white", np.full(power.shape[0], level), float(power.mean()))


def estimate_coloured(x: np.ndarray, frames: int = SMOOTH_FRAMES, bins: int = SMOOTH_BINS,
                      quantile: float = COLOURED_QUANTILE) -> NoiseEstimate:
    """Minimum-statistics estimate of any stationary noise spectrum from ``x`` ``(L,)``: ``psd`` ``(F,)``."""
    power = _power(x)
    stat = _low_quantile(power, frames, bins, quantile)
    bias = _white_bias(power.shape, frames, bins, quantile)  # the same statistic of unit white noise
    psd = np.maximum(stat / bias, MIN_RELATIVE_LEVEL * float(power.mean()))
    return NoiseEstimate("coloured", psd, float(power.mean()))


def estimate_noise(x: np.ndarray, kind: str = "auto") -> NoiseEstimate:
    """The blind noise estimate of ``x`` ``(L,)`` by ``kind`` (one of :data:`NOISE_KINDS`)."""
    if kind not in NOISE_KINDS:
        raise NoiseEstimateError(f"unknown noise estimator {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if kind == "white":
        return estimate_white(x)
    coloured = estimate_coloured(x)
    if kind == "auto" and (abs(spectral_tilt_db(coloured.psd)) <= FLAT_DB
                           or coloured.input_snr_db < MIN_COLOURED_SNR_DB):
        return estimate_white(x)
    return coloured


def spectral_tilt_db(psd: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median level of ``psd`` ``(F,)`` over 2.5-4.5 kHz minus that over 5.5-7.5 kHz (dB)."""
    f = np.arange(psd.shape[0]) * sr / N_FFT
    (a0, a1), (b0, b1) = FLAT_BANDS_HZ
    low = np.median(psd[(f >= a0) & (f < a1)])
    high = np.median(psd[(f >= b0) & (f <= b1)])
    return 10.0 * math.log10(max(low, 1e-30) / max(high, 1e-30))


# ----------------------------------------------------------------------------- internals
def _power(x: np.ndarray) -> np.ndarray:
    x = check_audio(x, "noisy observation")
    if x.shape[0] < MIN_SAMPLES:
        raise NoiseEstimateError(f"{x.shape[0]} samples are too few for a noise estimate (at least {MIN_SAMPLES}, "
                                 f"the shortest fit)")
    return power_spectrogram(x)


def _low_quantile(power: np.ndarray, frames: int, bins: int, quantile: float) -> np.ndarray:
    """Per bin: the ``quantile`` over frames of ``power`` ``(F, T)`` smoothed by a box of
    ``2 bins + 1`` bins x ``frames`` frames (edges: the available neighbours). Returns ``(F,)``."""
    from scipy.ndimage import uniform_filter

    frames = min(frames, power.shape[1])
    smooth = uniform_filter(power, size=(2 * bins + 1, frames), mode="nearest")
    half = frames // 2  # frames whose box reaches past the clip's ends repeat edge values: not used
    core = smooth[:, half: power.shape[1] - half] if power.shape[1] > 2 * half + 8 else smooth
    return np.quantile(core, quantile, axis=1)


@lru_cache(maxsize=16)
def _white_bias_cached(shape: tuple[int, int], frames: int, bins: int, quantile: float) -> np.ndarray:
    length = shape[1] * 64  # T = L // hop frames
    rng = np.random.default_rng(12345)
    reps = []
    for _ in range(4):  # four draws: the calibration's own noise is small against the estimate's
        reps.append(_low_quantile(power_spectrogram(rng.standard_normal(length)), frames, bins, quantile))
    per_bin = np.mean(reps, axis=0) / window_energy()
    # Interior bins share one factor (the median: less calibration noise); the bins whose smoothing
    # box meets an edge of the spectrum (and DC, whose coefficients are real) keep their own.
    edge = bins + 1
    out = np.full(shape[0], float(np.median(per_bin[edge:-edge])))
    out[:edge], out[-edge:] = per_bin[:edge], per_bin[-edge:]
    return out


def _white_bias(shape, frames, bins, quantile) -> np.ndarray:
    return _white_bias_cached(tuple(int(s) for s in shape), int(frames), int(bins), float(quantile))
