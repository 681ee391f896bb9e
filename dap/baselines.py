"""Classical baselines beside the deep priors: what a practitioner would try first.

Each method takes the same observation as the priors (one clip, no training data) and returns the
restored waveform(s); the studies score them with the same metrics, on the same clips, and store
them as rows with ``selection = "none"`` (``baselines.csv`` next to the fits' ``rows.csv``). They are
references in the tables, never ranked against the four prior designs. The trivial answer (the
observation itself) is scored the same way, so that a table shows what a method must beat.
:func:`get_baseline` says what each one is and which knowledge it uses; docs/baselines.md explains
the choices, docs/extending.md how to register another.

=================  ======================  ============================================================
design             task                    knowledge
=================  ======================  ============================================================
``noisy-input``    denoising (Tables 1-2)  nothing: the noisy observation as it is (the trivial answer)
``wiener-oracle``  denoising (Tables 1-2)  the true noise's power spectrum (oracle, like the oracle rule)
``noisereduce``    denoising (Tables 1-2)  blind: spectral gating, noise statistics from the clip itself
``gapped-input``   inpainting (Table 3)    nothing: the observation with its gaps left silent (trivial)
``stft-interp``    inpainting (Table 3)    the gap positions (as the priors' masked loss)
``ar-interp``      inpainting (Table 3)    the gap positions
``hpss``           separation (Table 4)    blind: harmonic = piano, percussive = drums
=================  ======================  ============================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import signal

from dap.core.audio import SAMPLE_RATE, check_audio
from dap.core.errors import DapError
from dap.core.registry import Registry

N_FFT = 512
HOP = 128


class BaselineError(DapError, ValueError):
    """A baseline got input it cannot use (wrong shape, mismatched lengths, no observed context), or
    an unknown or twice-registered baseline name."""


@dataclass(frozen=True)
class Baseline:
    """One classical baseline: a method that needs no fit.

    name: its id in the rows' ``design`` column; task: the registered task it answers
    (:func:`dap.tasks.get_task`); what: one sentence for the captions; knows: what it knows beyond
    the observation; run: ``run(observed (L,), clean (L,) or (S, L), **context) -> estimate``, where
    ``context`` is what the task's corruption produced besides the observation (inpainting: ``mask``).
    """

    name: str
    task: str
    what: str
    knows: str
    run: Callable[..., np.ndarray]


_REGISTRY: Registry[Baseline] = Registry("baseline", BaselineError)


def register_baseline(baseline: Baseline, replace: bool = False) -> Baseline:
    """Add ``baseline`` to the registry (``replace``: overwrite one of the same name). Returns it."""
    return _REGISTRY.register(baseline.name, baseline, replace)


def get_baseline(name: str) -> Baseline:
    """The registered baseline ``name``; :class:`BaselineError` listing the known ones otherwise."""
    return _REGISTRY.lookup(name)


def baselines_for(task: str) -> list[str]:
    """Names of the baselines registered for ``task`` (``"denoise"``, ``"inpaint"``, ``"separate"``, ...),
    in registration order."""
    names = [name for name, b in _REGISTRY.items() if b.task == task]
    if not names:
        raise BaselineError(f"no baseline for task {task!r}; tasks: {sorted({b.task for b in _REGISTRY.values()})}")
    return names


def timed(method: Callable[..., np.ndarray], *args, **kwargs) -> tuple[np.ndarray, float]:
    """``(method(*args, **kwargs), wall seconds)``: the cost per clip the captions print."""
    t0 = time.perf_counter()
    out = method(*args, **kwargs)
    return out, time.perf_counter() - t0


def _stft(x: np.ndarray) -> np.ndarray:
    """Complex STFT ``(F, T)`` (F = 257) of ``x`` ``(L,)``: Hann 512, hop 128, zero-padded edges."""
    return signal.stft(x, nperseg=N_FFT, noverlap=N_FFT - HOP, window="hann", boundary="zeros", padded=True)[2]


def _istft(X: np.ndarray, length: int) -> np.ndarray:
    y = signal.istft(X, nperseg=N_FFT, noverlap=N_FFT - HOP, window="hann", boundary=True)[1]
    return _fit_length(y, length)


def _fit_length(y: np.ndarray, length: int) -> np.ndarray:
    y = y[:length]
    return np.pad(y, (0, length - len(y))).astype(np.float32)


# ----------------------------------------------------------------------------- denoising
def wiener_oracle(noisy: np.ndarray, noise: np.ndarray, alpha: float = 0.98, xi_min_db: float = -25.0) -> np.ndarray:
    """Wiener filter with the *known* noise power spectrum (oracle knowledge).

    noisy: ``(L,)`` observation; noise: ``(L,)`` the noise that was added (``noisy - clean``), of
    which only the mean power per frequency is used (a stationary model, as for any Wiener filter).
    The gain ``xi / (1 + xi)`` uses the decision-directed a-priori SNR ``xi`` (Ephraim-Malah,
    ``alpha``), floored at ``xi_min_db``. Returns ``(L,)`` float32.
    """
    noisy = check_audio(noisy, "noisy clip")
    noise = check_audio(noise, "noise", allow_silent=True)
    if noise.shape != noisy.shape:
        raise BaselineError(f"noise {noise.shape} and noisy clip {noisy.shape} must have the same length")
    Y = _stft(noisy.astype(np.float64))
    psd = np.mean(np.abs(_stft(noise.astype(np.float64))) ** 2, axis=1)  # (F,)
    psd = np.maximum(psd, 1e-12)
    gamma = np.abs(Y) ** 2 / psd[:, None]          # a-posteriori SNR per bin
    xi_min = 10 ** (xi_min_db / 10)
    gains = np.empty_like(gamma)
    prev = np.zeros(Y.shape[0])                     # |S_hat|^2 / psd of the previous frame
    for t in range(Y.shape[1]):                     # decision-directed: smooth the SNR estimate over frames
        xi = np.maximum(alpha * prev + (1 - alpha) * np.maximum(gamma[:, t] - 1, 0), xi_min)
        gains[:, t] = xi / (1 + xi)
        prev = gains[:, t] ** 2 * gamma[:, t]
    return _istft(gains * Y, len(noisy))


def spectral_gating(noisy: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Blind spectral gating (noisereduce's defaults, non-stationary mode): the noise threshold of each
    frequency follows a smoothed running estimate of the clip's own spectrum (the stationary mode
    took a steady tone for noise and did worse on the embedded clips). noisy: ``(L,)``; returns
    ``(L,)`` float32."""
    import noisereduce

    noisy = check_audio(noisy, "noisy clip")
    out = noisereduce.reduce_noise(y=noisy, sr=sr, n_jobs=1)
    return _fit_length(np.asarray(out, dtype=np.float32), len(noisy))


# ----------------------------------------------------------------------------- inpainting
def stft_interpolation(observed: np.ndarray, spans, n_iter: int = 0) -> np.ndarray:
    """Fill the gaps of ``observed`` ``(L,)`` by interpolation in the STFT magnitude domain.

    spans: ``[(start, end), ...]`` sample spans of the gaps (end exclusive, e.g.
    :attr:`dap.tasks.inpaint.GapMask.spans`). Frames whose 512-sample window touches a gap are
    missing; their magnitudes are interpolated linearly in time between the nearest complete frames
    on either side (one side only at a clip edge), their phases advanced from the left frame at the
    instantaneous frequency measured there (phase vocoder). Every observed sample is kept as it is.
    ``n_iter`` > 0 adds Griffin-Lim iterations in the missing frames; off by default, as on the
    embedded speech and digits they lowered the SNR inside the gaps (10 and 50 iterations tried).
    Returns ``(L,)`` float32.
    """
    observed = check_audio(observed, "observed clip", allow_silent=True)
    length = observed.shape[0]
    keep = np.ones(length, dtype=bool)
    for start, end in spans:
        if not 0 <= start < end <= length:
            raise BaselineError(f"gap {start}-{end} is outside a clip of {length} samples")
        keep[start:end] = False
    if keep.all():
        return observed.copy()
    X = _stft(np.where(keep, observed, 0.0).astype(np.float64))  # (F, T)
    T = X.shape[1]
    centres = np.arange(T) * HOP  # frame t is centred on sample t * HOP (zero-padded edges)
    missing = np.zeros(T, dtype=bool)
    for start, end in spans:
        missing |= (centres + N_FFT // 2 > start) & (centres - N_FFT // 2 < end)
    if missing.all():
        raise BaselineError("every STFT frame touches a gap: no observed context to interpolate from")
    mag, phase = np.abs(X), np.angle(X)
    for a, b in _runs(missing):
        left, right = a - 1, b + 1
        ref = left if left >= 0 else right
        omega = _phase_advance(phase, ref, -1 if ref == left else 1, missing)
        for t in range(a, b + 1):
            w = (t - left) / (right - left)
            lo = mag[:, left] if left >= 0 else mag[:, right]
            hi = mag[:, right] if right < T else mag[:, left]
            mag[:, t] = (1 - w) * lo + w * hi
            phase[:, t] = phase[:, ref] + omega * (t - ref)
    Z = mag * np.exp(1j * phase)
    y = observed.astype(np.float64)
    for _ in range(n_iter):
        y = np.where(keep, observed, _istft(Z, length))
        current = _stft(y)
        Z = np.where(missing[None], mag * np.exp(1j * np.angle(current)), current)
    return np.where(keep, observed, _istft(Z, length)).astype(np.float32)


def _phase_advance(phase: np.ndarray, ref: int, side: int, missing: np.ndarray) -> np.ndarray:
    """Phase advance per frame ``(F,)`` at frame ``ref``: the phase-vocoder instantaneous frequency
    from ``ref`` and its observed neighbour on ``side`` (-1 left, +1 right); each bin's centre
    frequency when that neighbour is missing or outside the clip."""
    F = phase.shape[0]
    nominal = 2 * np.pi * np.arange(F) * HOP / N_FFT
    other = ref + side
    if not 0 <= other < phase.shape[1] or missing[other]:
        return nominal
    step = (phase[:, ref] - phase[:, other]) * -side  # phase change over one frame, forward in time
    deviation = np.angle(np.exp(1j * (step - nominal)))  # wrapped to (-pi, pi]
    return nominal + deviation


def ar_interpolation(observed: np.ndarray, spans, order: int = 32, context: int = 2048) -> np.ndarray:
    """Fill the gaps of ``observed`` ``(L,)`` by autoregressive extrapolation from both sides.

    spans: ``[(start, end), ...]`` sorted gap spans (samples, end exclusive). For each gap, an AR
    model of ``order`` is fitted to up to ``context`` samples before it (after the previous gap, whose
    fill counts as observed) and, time-reversed, to up to ``context`` samples after it (before the
    next gap); the forward and backward extrapolations are cross-faded with a cos^2 weight. The
    autocorrelation method gives a stable model; a -40 dB white-noise correction keeps it well
    conditioned on a pure tone (it also damps the extrapolation slightly). Observed samples are
    kept. Returns ``(L,)`` float32.
    """
    observed = check_audio(observed, "observed clip", allow_silent=True)
    spans = sorted((int(s), int(e)) for s, e in spans)
    y = observed.astype(np.float64)
    for i, (start, end) in enumerate(spans):
        if not 0 <= start < end <= len(y) or (i and start < spans[i - 1][1]):
            raise BaselineError(f"gap {start}-{end} is outside a clip of {len(y)} samples or overlaps the previous one")
        lo = max(spans[i - 1][1] if i else 0, start - context)
        hi = min(spans[i + 1][0] if i + 1 < len(spans) else len(y), end + context)
        if start - lo <= order and hi - end <= order:
            raise BaselineError(f"gap {start}-{end} has fewer than {order + 1} observed samples on both sides")
        n = end - start
        w = np.cos(np.linspace(0, np.pi / 2, n)) ** 2  # 1 at the left edge, 0 at the right
        if start - lo <= order:
            w[:] = 0.0
        elif hi - end <= order:
            w[:] = 1.0
        fwd = _extrapolate(y[lo:start], n, order) if w.any() else 0.0
        bwd = _extrapolate(y[end:hi][::-1], n, order)[::-1] if (w < 1).any() else 0.0
        y[start:end] = w * fwd + (1 - w) * bwd
    return y.astype(np.float32)


def _extrapolate(context: np.ndarray, n: int, order: int) -> np.ndarray:
    """``n`` samples continuing ``context`` ``(M,)`` (M > order) with its AR(``order``) model."""
    from scipy.linalg import solve_toeplitz

    r = np.correlate(context, context, "full")[len(context) - 1:len(context) + order].copy()
    if r[0] <= 0:  # silent context: continue with silence
        return np.zeros(n)
    r[0] *= 1 + 1e-4
    a = np.concatenate([[1.0], solve_toeplitz(r[:order], -r[1:order + 1])])
    state = signal.lfiltic([1.0], a, context[::-1][:order])
    return signal.lfilter([1.0], a, np.zeros(n), zi=state)[0]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` index pairs of the runs of True in ``flags`` ``(T,)``."""
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


# ----------------------------------------------------------------------------- separation
def hpss(mixture: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Harmonic-percussive separation of ``mixture`` ``(L,)`` (librosa, soft masks, margin 1).

    Returns ``(2, L)`` float32: ``[harmonic, percussive]``, i.e. the estimates of
    :data:`dap.tasks.separate.SOURCES` = ``("piano", "drums")``.
    """
    import librosa

    mixture = check_audio(mixture, "mixture")
    S = librosa.stft(mixture, n_fft=n_fft, hop_length=hop)
    H, P = librosa.decompose.hpss(S)
    return np.stack([librosa.istft(C, hop_length=hop, length=len(mixture)) for C in (H, P)]).astype(np.float32)


for _baseline in (
    Baseline("noisy-input", "denoise", "the trivial answer: the noisy observation itself, unchanged", "nothing",
             lambda observed, clean, **_: observed),
    Baseline("wiener-oracle", "denoise", "STFT Wiener filter (decision-directed a-priori SNR, 512-point Hann, hop "
             "128) with the true noise's mean power spectrum", "oracle noise PSD",
             lambda observed, clean, **_: wiener_oracle(observed, observed - clean)),
    Baseline("noisereduce", "denoise", "spectral gating, noisereduce 3.0.3 with its defaults (non-stationary: each "
             "bin's threshold follows a smoothed running estimate of the clip's own spectrum)", "blind",
             lambda observed, clean, **_: spectral_gating(observed)),
    Baseline("gapped-input", "inpaint", "the trivial answer: the observation itself, its gaps left silent", "nothing",
             lambda observed, clean, **_: observed),
    Baseline("stft-interp", "inpaint", "STFT magnitudes (512-point Hann, hop 128) interpolated linearly in time "
             "between the complete frames bordering each gap, phases advanced from the left frame at its measured "
             "instantaneous frequency (phase vocoder); observed samples kept as they are", "gap positions",
             lambda observed, clean, mask, **_: stft_interpolation(observed, mask.spans)),
    Baseline("ar-interp", "inpaint", "autoregressive interpolation: an AR(32) model (autocorrelation method, -40 dB "
             "white-noise correction) fitted to up to 2048 observed samples on each side of a gap extrapolates "
             "forward and backward into it, the two cross-faded (cos^2)", "gap positions",
             lambda observed, clean, mask, **_: ar_interpolation(observed, mask.spans)),
    Baseline("hpss", "separate", "harmonic-percussive separation, librosa 0.11.0 (median filtering of the "
             "mixture's STFT, soft masks): harmonic = piano, percussive = drums", "blind",
             lambda observed, clean, **_: hpss(observed)),
):
    register_baseline(_baseline)
