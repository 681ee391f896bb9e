"""Audio in and out, and the STFT pair of paper 1.

I/O goes through ``soundfile`` (torchaudio >= 2.9 only reads through torchcodec); resampling
uses ``torchaudio.functional.resample``. Arrays are mono float32 numpy vectors ``(L,)`` unless a
docstring says otherwise.

The STFT follows docs/method.md, Signal path: n_fft = window = 1023 (periodic Hann), hop 64, centred with
reflect padding, no normalisation; real and imaginary parts are two channels. We keep
``L // hop`` frames, so 16384 samples give exactly 2 x 512 x 256 and 32768 give 2 x 512 x 512 (the
two pooling levels of the U-Nets need both sides divisible by 4). The inverse is a weighted
overlap-add that matches the forward transform (round trip > 100 dB SNR); ``mismatched=True``
reproduces the authors' inverse (1022-point window), which caps a clean round trip near 20 dB.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dap.core.errors import AudioError
from dap.core.files import atomic_write_bytes
from dap.core.text import one_line

SAMPLE_RATE = 16000
N_FFT = 1023
HOP = 64
#: Clip lengths of the paper: 1.024 s (WaveGAN length) and 2.048 s for the "2 s" speech clips.
CLIP_1S = 16384
CLIP_2S = 32768


# ----------------------------------------------------------------------------- checks
def check_audio(x: np.ndarray, name: str = "audio", allow_silent: bool = False) -> np.ndarray:
    """Return ``x`` as float32 ``(L,)`` after checking it is usable; raise :class:`AudioError`.

    Rejects: empty arrays, non-finite samples (NaN/Inf), and (unless ``allow_silent``) all-zero
    signals, each with a message that names ``name`` and the problem.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise AudioError(f"{name}: expected a mono 1-D signal, got shape {x.shape}")
    if x.size == 0:
        raise AudioError(f"{name}: the signal is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} samples are NaN or Inf")
    if not allow_silent and not np.any(x):
        raise AudioError(f"{name}: the signal is silent (all samples are zero)")
    return x.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- file I/O
def check_audio_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or AudioError naming it when it does not exist or is a folder."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    return path


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE, mono: bool = True,
               allow_silent: bool = False) -> np.ndarray:
    """Read an audio file, mix to mono, resample to ``sr``.

    Returns float32 ``(L,)`` (or ``(C, L)`` when ``mono=False``). Raises :class:`AudioError`
    naming the file for a missing, unreadable, empty, silent or non-finite file.
    """
    path = check_audio_path(path)
    import soundfile as sf  # I/O only: the STFT pair works without it (benchmarks/gpu_check.py)

    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # (L, C)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"{path}: cannot be read as audio ({one_line(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    data = data.T  # (C, L)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if mono:
        data = data.mean(axis=0)
    if file_sr != sr:
        data = resample(data, file_sr, sr)
    if not allow_silent and not np.any(data):
        raise AudioError(f"{path}: the audio is silent (all samples are zero)")
    return np.ascontiguousarray(data, dtype=np.float32)


def save_audio(path: str | os.PathLike, x, sr: int = SAMPLE_RATE, subtype: str | None = None) -> Path:
    """Write ``x`` (``(L,)`` or ``(C, L)``) atomically (encoded in memory, then renamed into place).

    The format follows the suffix (.wav, .flac, ...). Raises :class:`AudioError` when the folder
    cannot be written.
    """
    path = Path(path)
    x = _to_numpy(x)
    data = x.T if x.ndim == 2 else x
    fmt = path.suffix.lstrip(".").upper() or "WAV"
    buf = io.BytesIO()
    import soundfile as sf

    try:
        sf.write(buf, data, sr, subtype=subtype, format=fmt)
        atomic_write_bytes(path, buf.getvalue())
    except (OSError, sf.LibsndfileError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot write audio ({one_line(exc)})") from None
    return path


# ----------------------------------------------------------------------------- signal helpers
#: Largest ``orig * new`` (after dividing both by their gcd) resampled exactly; torchaudio's kernel
#: holds about that many floats (44.1 -> 16 kHz: 441 * 160). Odd rates are approximated.
MAX_RATIO_TERMS = 2_000_000


def resample_ratio(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """``(orig, new)`` to pass to torchaudio for resampling ``orig_sr -> new_sr``.

    The exact reduced ratio when it is small (every common rate); otherwise the closest ratio with
    ``orig * new <= MAX_RATIO_TERMS`` (relative error ~1e-5). An odd rate such as 44101 Hz or a
    corrupt header's 767999 Hz would otherwise make torchaudio build a (new x orig) kernel of
    billions of floats (found by fuzzing dap.restore).
    """
    from fractions import Fraction

    ratio = Fraction(int(new_sr), int(orig_sr))
    limit = max(1, int(math.isqrt(MAX_RATIO_TERMS)))
    while ratio.numerator * ratio.denominator > MAX_RATIO_TERMS:
        ratio = ratio.limit_denominator(limit)
        limit = max(1, limit // 2)
    return ratio.denominator, ratio.numerator


def resample(x, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio; ``(..., L)`` float32 in and out (see
    :func:`resample_ratio` for odd rates)."""
    import torchaudio  # here: the STFT pair works without it

    if orig_sr == new_sr:
        return np.asarray(x, dtype=np.float32)
    orig, new = resample_ratio(orig_sr, new_sr)
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return torchaudio.functional.resample(t, orig, new).contiguous().numpy()


def peak_normalise(x, peak: float = 1.0, name: str = "audio") -> np.ndarray:
    """Scale so that ``max |x| == peak``. A silent signal cannot be normalised: AudioError."""
    x = check_audio(_to_numpy(x), name)
    return (x * (peak / np.max(np.abs(x)))).astype(np.float32)


def fix_length(x, length: int, offset: int = 0) -> np.ndarray:
    """Crop ``x[offset:offset+length]`` or zero-pad at the end to exactly ``length`` samples."""
    x = _to_numpy(x)[offset:]
    if x.shape[-1] >= length:
        return np.ascontiguousarray(x[..., :length])
    pad = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
    return np.pad(x, pad)


# ----------------------------------------------------------------------------- STFT pair
def loudest_start(x: np.ndarray, length: int, step: int) -> int:
    """Start of the ``length``-sample window of ``x`` ``(L,)`` with the most energy, among starts on
    multiples of ``step`` (the first loudest wins; 0 when ``x`` is not longer than ``length``)."""
    if length <= 0 or step <= 0:
        raise ValueError(f"length and step must be positive, got {length} and {step}")
    if len(x) <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(x, dtype=np.float64) ** 2)])
    starts = np.arange(0, len(x) - length + 1, step)
    return int(starts[np.argmax(energy[starts + length] - energy[starts])])


def _window(n: int, device=None) -> torch.Tensor:
    return torch.hann_window(n, periodic=True, dtype=torch.float32, device=device)


def num_frames(length: int, hop: int = HOP) -> int:
    """Frames kept by :func:`stft` for a signal of ``length`` samples: ``length // hop``."""
    return length // hop


def stft(x, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Complex STFT as two real channels.

    x: ``(L,)`` or ``(B, L)`` (numpy or tensor). Returns float32 ``(2, F, T)`` or
    ``(B, 2, F, T)`` with ``F = n_fft // 2 + 1`` and ``T = L // hop`` (frame t centred on
    sample ``t * hop``). 16384 samples -> (2, 512, 256).
    """
    t = torch.as_tensor(x, dtype=torch.float32) if not torch.is_tensor(x) else x.float()
    single = t.dim() == 1
    if single:
        t = t[None]
    if t.shape[-1] <= n_fft // 2:
        raise AudioError(f"signal of {t.shape[-1]} samples is too short for an STFT with n_fft={n_fft}")
    spec = torch.stft(t, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=_window(n_fft, t.device),
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spec = spec[..., : num_frames(t.shape[-1], hop)]
    out = torch.stack([spec.real, spec.imag], dim=-3)  # (B, 2, F, T)
    return out[0] if single else out


def istft(X, length: int, hop: int = HOP, mismatched: bool = False) -> torch.Tensor:
    """Inverse of :func:`stft` by weighted overlap-add.

    X: ``(2, F, T)`` or ``(B, 2, F, T)`` real/imag. Returns ``(length,)`` or ``(B, length)``.
    ``mismatched=True`` inverts with a ``2 (F - 1)``-point window (1022 for F = 512) as the
    authors' code did; a clean round trip then only reaches about 20 dB SNR.
    """
    X = torch.as_tensor(X) if not torch.is_tensor(X) else X
    single = X.dim() == 3
    if single:
        X = X[None]
    if X.dim() != 4 or X.shape[1] != 2:
        raise ValueError(f"istft expects (B, 2, F, T) real/imag, got {tuple(X.shape)}")
    X = X.float()
    n_bins, n_frames = X.shape[-2], X.shape[-1]
    n = 2 * (n_bins - 1) if mismatched else 2 * n_bins - 1  # 1022 or 1023
    pad = N_FFT // 2  # the forward transform's centring offset (511)
    win = _window(n, X.device)
    frames = torch.fft.irfft(torch.complex(X[:, 0], X[:, 1]), n=n, dim=-2) * win[:, None]  # (B, n, T)
    total = n + hop * (n_frames - 1)
    ola = F.fold(frames, output_size=(1, total), kernel_size=(1, n), stride=(1, hop))[:, 0, 0]
    env = F.fold((win ** 2)[None, :, None].expand(1, n, n_frames), output_size=(1, total),
                 kernel_size=(1, n), stride=(1, hop))[0, 0, 0]
    y = ola / torch.where(env > 1e-8, env, torch.ones_like(env))
    y = y[:, pad: pad + length]
    if y.shape[-1] < length:
        y = F.pad(y, (0, length - y.shape[-1]))
    return y[0] if single else y


# ----------------------------------------------------------------------------- internals
def _to_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


