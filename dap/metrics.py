"""Evaluation metrics of both papers, one documented definition each.

(One module on purpose, at ~420 lines: every number in every table is defined here, next to the
shared input checks, so that a reader checks all definitions in one file.)

Paper 1 (deep priors): waveform SNR, PSNR, PESQ, spectral SNR, envelope distance, BSS Eval SDR/SIR
with one window per clip, and the best permutation for separation. Paper 2 (weakly informed
separation): BSS Eval SDR/SIR/SAR on 1 s windows, PES and EPS.

Conventions
-----------
* Single-signal metrics take two mono signals ``(L,)`` (numpy or torch; any float dtype) and
  return a Python ``float``. They compute in float64.
* Argument order is always (reference / target, estimate).
* Bad inputs raise, they are never patched: a length mismatch, NaN/Inf samples, an empty or
  non-1-D signal raise :class:`~dap.core.errors.AudioError`; a metric that is undefined for the given
  (valid) signals, e.g. SNR against a silent reference, raises :class:`UndefinedMetric` (an
  ``AudioError``); a bad option (PESQ mode, window size...) raises :class:`MetricError`.
* An estimate equal to the reference gives ``+inf`` for the ratio metrics (SNR, PSNR, spectral
  SNR): the ratio is well defined and infinite, so we return it rather than clip it.
* ``NaN`` is returned only where it means "undefined here, by definition" and is documented:
  BSS Eval windows in which a reference or estimate is silent (museval's rule), PES/EPS when no
  frame qualifies, PESQ failures when ``on_error="nan"`` is asked for. Aggregators use
  ``nanmedian`` / ``nanmean`` and report how many values were NaN.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import scipy.signal
import torch

from dap.core.audio import SAMPLE_RATE, check_audio
from dap.core.errors import AudioError, DapError

__all__ = [
    "MetricError", "UndefinedMetric",
    "PSNR_DEFINITION", "PESQ_MODE_NOTE", "DEFINITIONS", "metric_info",
    "snr", "psnr", "pesq", "spectral_snr", "envelope_distance",
    "bss_eval", "best_permutation", "pes", "eps", "pes_eps_counts",
]


class MetricError(DapError, ValueError):
    """An option passed to a metric is invalid (unknown PESQ mode, window longer than the clip...)."""


class UndefinedMetric(AudioError):
    """The metric has no value for these (otherwise valid) signals, e.g. SNR of a silent reference."""


# ----------------------------------------------------------------------------- definitions
#: Spectral SNR's STFT (docs/method.md, Metrics): 256-point periodic Hann, hop 128, centred.
SPEC_N_FFT = 256
SPEC_HOP = 128
#: PES/EPS: ``10 log10(energy + EPS_FLOOR)`` keeps an all-zero frame finite (-120 dB).
PES_EPS_FLOOR = 1e-12
#: museval's distortion-filter length in taps (its default; 32 ms at 16 kHz).
BSS_FILTER_LEN = 512

PSNR_DEFINITION = "PSNR = 10 log10(max|ref|^2 / mean((ref - est)^2)), waveform, peak of the reference"
PESQ_MODE_NOTE = ("PESQ: ITU-T P.862.2 wide-band ('wb') MOS-LQO at 16 kHz via the `pesq` package "
                  "(the paper does not state the mode); 'nb' (P.862 narrow-band) on request")

DEFINITIONS: dict[str, str] = {
    "SNR": "SNR = 10 log10(sum ref^2 / sum (ref - est)^2), waveform",
    "PSNR": PSNR_DEFINITION,
    "PESQ": PESQ_MODE_NOTE,
    "SSNR": ("spectral SNR = 10 log10(sum |S_ref|^2 / sum (|S_ref| - |S_est|)^2), magnitude STFT, "
             f"n_fft {SPEC_N_FFT}, hop {SPEC_HOP}, periodic Hann, centred (reflect padding)"),
    "ENV": "envelope distance = sqrt(mean((|hilbert(ref)| - |hilbert(est)|)^2))",
    "SDR": ("BSS Eval v4 (museval) SDR, time-invariant 512-tap distortion filters; NaN in windows "
            "where any reference or estimate is all zero"),
    "SIR": "BSS Eval v4 (museval) SIR, as SDR",
    "SAR": "BSS Eval v4 (museval) SAR, as SDR",
    "PES": ("PES = mean over 1 s frames whose target is all zero of 10 log10(sum est^2 + 1e-12) "
            "(dB, lower is better; NaN when no frame qualifies)"),
    "EPS": ("EPS = mean over 1 s frames whose estimate is all zero and target is not of "
            "10 log10(sum target^2 + 1e-12) (dB, lower is better; NaN when no frame qualifies)"),
}


def metric_info(name: str | None = None) -> dict[str, str] | str:
    """One-line definition of metric ``name`` (a key of :data:`DEFINITIONS`), or a copy of all."""
    if name is None:
        return dict(DEFINITIONS)
    if name not in DEFINITIONS:
        raise MetricError(f"metric_info: unknown metric {name!r}; known: {', '.join(DEFINITIONS)}")
    return DEFINITIONS[name]


# ----------------------------------------------------------------------------- input checks
def _as_float64(x, name: str) -> np.ndarray:
    """``x`` (numpy, list or torch) as a float64 numpy array, without checks."""
    if torch.is_tensor(x):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"{name}: cannot be read as a numeric array ({exc})") from None


def _signal(x, name: str) -> np.ndarray:
    """A checked mono float64 signal ``(L,)``: 1-D, non-empty, finite (silence allowed here)."""
    x = _as_float64(x, name)
    check_audio(x, name, allow_silent=True)
    return x


def _pair(ref, est, ref_name: str = "ref", est_name: str = "est",
          silent_ref_ok: bool = False, metric: str = "metric") -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a (reference, estimate) pair of mono signals of equal length."""
    r, e = _signal(ref, ref_name), _signal(est, est_name)
    if r.shape[0] != e.shape[0]:
        raise AudioError(f"{metric}: {ref_name} has {r.shape[0]} samples but {est_name} has "
                         f"{e.shape[0]}; they must have the same length")
    if not silent_ref_ok and not np.any(r):
        raise UndefinedMetric(f"{metric}: {ref_name} is silent (all zeros), so the metric is undefined")
    return r, e


def _positive_int(value, name: str, metric: str) -> int:
    """``value`` as an int if it is a positive integer (a count of samples), else MetricError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise MetricError(f"{metric}: {name} must be a positive integer number of samples, got {value!r}")
    return int(value)


def _db_ratio(num: float, den: float) -> float:
    """``10 log10(num / den)`` with ``den == 0`` -> ``+inf`` (num > 0 is checked by callers)."""
    if den == 0.0:
        return float("inf")
    return float(10.0 * np.log10(num / den))


# ----------------------------------------------------------------------------- paper 1 metrics
def snr(ref, est) -> float:
    """Waveform SNR in dB: ``10 log10(sum ref^2 / sum (ref - est)^2)``.

    ref, est: ``(L,)``. A silent reference raises :class:`UndefinedMetric`; a silent estimate
    gives 0 dB; ``est == ref`` gives ``+inf``.
    """
    r, e = _pair(ref, est, metric="snr")
    return _db_ratio(float(np.sum(r ** 2)), float(np.sum((r - e) ** 2)))


def psnr(ref, est) -> float:
    """Peak SNR in dB, see :data:`PSNR_DEFINITION`: ``10 log10(max|ref|^2 / mean((ref - est)^2))``.

    ref, est: ``(L,)``. The peak is the reference's (not a nominal full scale of 1), so the value
    does not depend on how the clip was normalised. Silent reference: :class:`UndefinedMetric`;
    ``est == ref``: ``+inf``.
    """
    r, e = _pair(ref, est, metric="psnr")
    return _db_ratio(float(np.max(np.abs(r)) ** 2), float(np.mean((r - e) ** 2)))


def pesq(ref, est, sr: int = SAMPLE_RATE, mode: Literal["wb", "nb"] = "wb",
         on_error: Literal["raise", "nan"] = "raise") -> float:
    """PESQ MOS-LQO via the ``pesq`` package (see :data:`PESQ_MODE_NOTE`).

    ref, est: ``(L,)`` at ``sr`` Hz (8000 or 16000; ``"wb"`` needs 16000), at least 0.25 s long.
    PESQ fails on some valid inputs: a reference in which it detects no speech ("no utterances")
    or a silent estimate. ``on_error="raise"`` (default) turns that into :class:`UndefinedMetric`;
    ``on_error="nan"`` returns NaN so a batch evaluation can go on and count the failures. A
    silent reference, a too-short signal, or a bad ``sr``/``mode`` always raise.
    """
    if mode not in ("wb", "nb"):
        raise MetricError(f"pesq: mode must be 'wb' (wide-band) or 'nb' (narrow-band), got {mode!r}")
    if sr not in (8000, 16000):
        raise MetricError(f"pesq: sr must be 8000 or 16000 Hz (resample first), got {sr}")
    if mode == "wb" and sr != 16000:
        raise MetricError(f"pesq: wide-band mode needs sr=16000, got sr={sr}; use mode='nb'")
    if on_error not in ("raise", "nan"):
        raise MetricError(f"pesq: on_error must be 'raise' or 'nan', got {on_error!r}")
    r, e = _pair(ref, est, metric="pesq")
    if r.shape[0] < sr // 4:
        raise AudioError(f"pesq: signals have {r.shape[0]} samples; PESQ needs at least 0.25 s "
                         f"({sr // 4} samples at {sr} Hz)")
    from pesq import PesqError as _PesqError  # here, not at import: the GPU check has no pesq
    from pesq import pesq as _pesq

    try:
        return float(_pesq(sr, r, e, mode))
    except (_PesqError, ValueError) as exc:
        # PesqError: "no utterances detected"; ValueError: the C code yields NaN (silent estimate).
        if on_error == "nan":
            return float("nan")
        silent = " (the estimate is silent)" if not np.any(e) else ""
        msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UndefinedMetric(f"pesq: PESQ failed on these signals{silent}: {msg}; "
                              "pass on_error='nan' to record NaN instead") from None


def _magnitude(x: np.ndarray) -> torch.Tensor:
    """Magnitude STFT ``(SPEC_N_FFT // 2 + 1, 1 + L // SPEC_HOP)`` of a float64 ``(L,)`` signal."""
    t = torch.from_numpy(x)
    win = torch.hann_window(SPEC_N_FFT, periodic=True, dtype=torch.float64)
    spec = torch.stft(t, n_fft=SPEC_N_FFT, hop_length=SPEC_HOP, win_length=SPEC_N_FFT, window=win,
                      center=True, pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True)
    return spec.abs()


def spectral_snr(ref, est) -> float:
    """Spectral SNR in dB: ``10 log10(sum |S_ref|^2 / sum (|S_ref| - |S_est|)^2)``.

    ref, est: ``(L,)`` with ``L > 128``. S is the STFT with n_fft 256, hop 128, periodic Hann,
    centred with reflect padding (``1 + L // 128`` frames). Phase is ignored, so a sign flip scores
    ``+inf``. Silent reference: :class:`UndefinedMetric`; equal magnitudes: ``+inf``.
    """
    r, e = _pair(ref, est, metric="spectral_snr")
    if r.shape[0] <= SPEC_N_FFT // 2:
        raise AudioError(f"spectral_snr: signals have {r.shape[0]} samples; the centred "
                         f"{SPEC_N_FFT}-point STFT needs more than {SPEC_N_FFT // 2}")
    S_ref, S_est = _magnitude(r), _magnitude(e)
    return _db_ratio(float(torch.sum(S_ref ** 2)), float(torch.sum((S_ref - S_est) ** 2)))


def envelope_distance(ref, est) -> float:
    """RMS distance of Hilbert envelopes: ``sqrt(mean((|hilbert(ref)| - |hilbert(est)|)^2))``.

    ref, est: ``(L,)``. In the signals' units (not dB); 0 for equal envelopes, lower is better.
    Defined for silent signals too. The analytic signal is computed over the whole clip by FFT
    (``scipy.signal.hilbert``), so a sinusoid with a whole number of periods has a flat envelope.
    """
    r, e = _pair(ref, est, silent_ref_ok=True, metric="envelope_distance")
    env_r, env_e = np.abs(scipy.signal.hilbert(r)), np.abs(scipy.signal.hilbert(e))
    return float(np.sqrt(np.mean((env_r - env_e) ** 2)))


# ----------------------------------------------------------------------------- BSS Eval
def _sources(x, name: str) -> np.ndarray:
    """A checked float64 ``(n_sources, L)`` array of mono sources."""
    a = _as_float64(x, name)
    if a.ndim != 2:
        raise AudioError(f"{name}: expected (n_sources, L), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise AudioError(f"{name}: empty array of shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise AudioError(f"{name}: {int(np.count_nonzero(~np.isfinite(a)))} samples are NaN or Inf")
    return a


def _source_pair(refs, ests, metric: str) -> tuple[np.ndarray, np.ndarray]:
    r, e = _sources(refs, "refs"), _sources(ests, "ests")
    if r.shape != e.shape:
        raise AudioError(f"{metric}: refs has shape {r.shape} (n_sources, L) but ests has shape "
                         f"{e.shape}; they must match")
    return r, e


def bss_eval(refs, ests, sr: int = SAMPLE_RATE, window: int | None = None, hop: int | None = None,
             on_silent: Literal["raise", "nan"] = "raise") -> dict[str, np.ndarray]:
    """BSS Eval v4 (museval) SDR, SIR and SAR per source, in dB.

    refs, ests: ``(n_sources, L)``; ``ests[j]`` is scored against ``refs[j]`` (no permutation
    search: see :func:`best_permutation`). ``window``/``hop`` are in samples and are passed to
    museval explicitly: ``window=None`` is one window covering the whole clip (paper 1) and the
    arrays have shape ``(n_sources,)``; otherwise (e.g. ``window=sr`` for paper 2's 1 s windows)
    they have shape ``(n_sources, n_windows)`` with ``n_windows = (L - window) // hop + 1`` (a
    trailing partial window is dropped), and ``hop=None`` means ``hop = window`` (no overlap).
    ``sr`` is only used in messages: BSS Eval itself works in samples (512-tap filters).

    museval (v4: distortion filters fitted once on the whole clip) gives NaN for every source in
    a window where **any** reference or estimate is all zeros; those NaNs are kept (aggregate with
    ``nanmedian``). A perfect estimate can give ``+inf``. A source that is all zeros over the
    whole clip makes every window NaN: with ``on_silent="raise"`` (default) that raises
    :class:`UndefinedMetric` naming the source, with ``on_silent="nan"`` the all-NaN arrays are
    returned.
    """
    if on_silent not in ("raise", "nan"):
        raise MetricError(f"bss_eval: on_silent must be 'raise' or 'nan', got {on_silent!r}")
    r, e = _source_pair(refs, ests, "bss_eval")
    n_src, length = r.shape
    if window is None:
        if hop is not None:
            raise MetricError("bss_eval: hop is only meaningful with a window; got window=None, "
                              f"hop={hop}")
        win, hp = length, length
    else:
        win = _positive_int(window, "window", "bss_eval")
        hp = win if hop is None else _positive_int(hop, "hop", "bss_eval")
        if win > length:
            raise MetricError(f"bss_eval: window of {win} samples ({win / sr:g} s at {sr} Hz) is "
                              f"longer than the clip ({length} samples); use window=None for one "
                              "window covering the clip")
    n_win = (length - win) // hp + 1

    silent = [f"refs[{i}]" for i in range(n_src) if not np.any(r[i])]
    silent += [f"ests[{i}]" for i in range(n_src) if not np.any(e[i])]
    if silent:
        if on_silent == "raise":
            raise UndefinedMetric(f"bss_eval: {', '.join(silent)} is all zeros, so SDR/SIR/SAR are "
                                  "undefined; pass on_silent='nan' to get NaN instead")
        nan = np.full((n_src, n_win), np.nan)
        out = {"SDR": nan, "SIR": nan.copy(), "SAR": nan.copy()}
    else:
        import museval.metrics  # slow import (pulls in musdb/pandas): only when needed

        try:
            sdr, _isr, sir, sar, _perm = museval.metrics.bss_eval(
                r[:, :, None], e[:, :, None], window=win, hop=hp, compute_permutation=False,
                filters_len=BSS_FILTER_LEN, framewise_filters=False, bsseval_sources_version=False)
        except (AttributeError, np.linalg.LinAlgError) as exc:
            # museval 0.4.1 falls back to lstsq via np.linalg.linalg, gone in numpy 2: a singular
            # projection system surfaces as this AttributeError.
            if isinstance(exc, AttributeError) and "linalg" not in str(exc):
                raise
            raise UndefinedMetric("bss_eval: the references' correlation matrix is singular (e.g. "
                                  "linearly dependent references), BSS Eval is undefined") from None
        if sdr.shape != (n_src, n_win):  # museval's own framing must agree with ours
            raise RuntimeError(f"bss_eval: museval returned shape {sdr.shape}, "
                               f"expected {(n_src, n_win)}")
        out = {"SDR": np.asarray(sdr, float), "SIR": np.asarray(sir, float),
               "SAR": np.asarray(sar, float)}
    if window is None:
        out = {k: v[:, 0] for k, v in out.items()}
    return out


def best_permutation(refs, ests, criterion: Literal["snr", "sdr"] = "snr") -> tuple[int, ...]:
    """The order of the estimates that best matches the references.

    refs, ests: ``(n_sources, L)``. Returns ``perm`` such that ``ests[perm[i]]`` is the estimate
    of ``refs[i]`` (so ``ests[list(perm)]`` is aligned with ``refs``), chosen to maximise the mean
    over sources of waveform SNR (``criterion="snr"``, cheap, scale-sensitive) or of whole-clip
    BSS Eval SDR (``criterion="sdr"``, one museval call per permutation). All ``n!`` orders are
    tried (``n_sources <= 6``); ties keep the first in lexicographic order (identity first).
    """
    if criterion not in ("snr", "sdr"):
        raise MetricError(f"best_permutation: criterion must be 'snr' or 'sdr', got {criterion!r}")
    r, e = _source_pair(refs, ests, "best_permutation")
    n_src = r.shape[0]
    if n_src > 6:
        raise MetricError(f"best_permutation: {n_src} sources means {n_src}! orders; at most 6 supported")
    if criterion == "snr":
        score = np.array([[snr(r[i], e[j]) for j in range(n_src)] for i in range(n_src)])

        def mean_score(perm: tuple[int, ...]) -> float:
            return float(np.mean(score[np.arange(n_src), list(perm)]))
    else:
        def mean_score(perm: tuple[int, ...]) -> float:
            return float(np.mean(bss_eval(r, e[list(perm)], on_silent="raise")["SDR"]))

    best, best_score = None, -np.inf
    for perm in itertools.permutations(range(n_src)):
        s = mean_score(perm)
        if best is None or s > best_score:
            best, best_score = perm, s
    return tuple(int(i) for i in best)


# ----------------------------------------------------------------------------- PES / EPS
def _frame_energies(target, estimate, frame: int, metric: str):
    """Per-frame energies and silence flags of complete frames.

    Returns ``(e_target, e_est, silent_target, silent_est)``, each ``(n_frames,)`` with
    ``n_frames = L // frame`` (the incomplete last frame is skipped).
    """
    frame = _positive_int(frame, "frame", metric)
    t, e = _pair(target, estimate, "target", "estimate", silent_ref_ok=True, metric=metric)
    n = t.shape[0] // frame
    if n == 0:
        raise AudioError(f"{metric}: signals have {t.shape[0]} samples, shorter than one frame of "
                         f"{frame} samples")
    tf, ef = t[: n * frame].reshape(n, frame), e[: n * frame].reshape(n, frame)
    # "Silent" means digital silence: every sample exactly zero (no dB threshold).
    return (np.sum(tf ** 2, axis=1), np.sum(ef ** 2, axis=1),
            ~np.any(tf != 0, axis=1), ~np.any(ef != 0, axis=1))


def _eps_mask(silent_target: np.ndarray, silent_est: np.ndarray, count_silent_targets: bool) -> np.ndarray:
    return silent_est if count_silent_targets else silent_est & ~silent_target


def _mean_db(energies: np.ndarray) -> float:
    """Mean of ``10 log10(energy + 1e-12)``; NaN (undefined) for no frames."""
    if energies.size == 0:
        return float("nan")
    return float(np.mean(10.0 * np.log10(energies + PES_EPS_FLOOR)))


def pes(target, estimate, frame: int = SAMPLE_RATE) -> float:
    """Predicted Energy at Silence (dB, lower is better).

    target, estimate: ``(L,)``; frames of ``frame`` samples (1 s at 16 kHz), no overlap, the
    incomplete last frame skipped. PES = mean over frames whose **target** is all zeros of
    ``10 log10(sum estimate^2 + 1e-12)``; a perfect (all-zero) prediction there scores -120 dB.
    Returns NaN when the target has no silent frame (PES undefined; see :func:`pes_eps_counts`).
    """
    _, e_est, silent_t, _ = _frame_energies(target, estimate, frame, "pes")
    return _mean_db(e_est[silent_t])


def eps(target, estimate, frame: int = SAMPLE_RATE, count_silent_targets: bool = False) -> float:
    """Energy at Predicted Silence (dB, lower is better).

    target, estimate: ``(L,)``; frames as in :func:`pes`. EPS = mean over frames whose
    **estimate** is all zeros and whose target is not of ``10 log10(sum target^2 + 1e-12)`` (the
    paper's definition). ``count_silent_targets=True`` also counts frames where both are silent
    (each adds -120 dB), as the authors' code did by default. Returns NaN when no frame qualifies.
    """
    e_t, _, silent_t, silent_e = _frame_energies(target, estimate, frame, "eps")
    return _mean_db(e_t[_eps_mask(silent_t, silent_e, count_silent_targets)])


def pes_eps_counts(target, estimate, frame: int = SAMPLE_RATE) -> dict[str, int]:
    """How many frames PES and EPS average over, for tables.

    Returns ``{"n_frames": complete frames, "n_pes_frames": target silent, "n_eps_frames":
    estimate silent and target not (the paper's EPS), "n_eps_frames_incl_silent_targets":
    estimate silent (EPS with count_silent_targets=True)}``.
    """
    _, _, silent_t, silent_e = _frame_energies(target, estimate, frame, "pes_eps_counts")
    return {
        "n_frames": int(silent_t.size),
        "n_pes_frames": int(np.count_nonzero(silent_t)),
        "n_eps_frames": int(np.count_nonzero(_eps_mask(silent_t, silent_e, False))),
        "n_eps_frames_incl_silent_targets": int(np.count_nonzero(silent_e)),
    }
