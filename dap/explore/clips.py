"""The clip to fit: an embedded data set's clip or an upload, cropped to its loudest excerpt."""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf

from dap.core.audio import SAMPLE_RATE, check_audio, loudest_start, peak_normalise, resample
from dap.core.errors import AudioError
from dap.core.text import one_line
from dap.data import load_clips
from dap.explore.choices import LENGTH_MULTIPLE, ExplorerError, clip_samples

#: Shortest usable upload (the STFT needs > 511 samples, the U-Net a multiple of 256).
MIN_UPLOAD_S = 0.25

_CLIP_CACHE: dict[str, list] = {}


def embedded_ids(dataset: str) -> list[str]:
    """Ids of an embedded data set's clips, sorted (what ``clip_index`` indexes)."""
    return [c.id for c in _embedded(dataset)]


def _embedded(dataset: str) -> list:
    if dataset not in _CLIP_CACHE:
        _CLIP_CACHE[dataset] = sorted(load_clips(dataset), key=lambda c: c.id)
    return _CLIP_CACHE[dataset]


def embedded_clip(dataset: str, index: int) -> tuple[np.ndarray, str]:
    """Clip ``index`` of an embedded data set: ``(audio (L,) float32, label)``.

    ``stems`` gives the mixture of target and accompaniment. Raises :class:`ExplorerError` for an
    index out of range (naming the range).
    """
    clips = _embedded(dataset)
    if not 0 <= index < len(clips):
        raise ExplorerError(f"clip_index {index} is out of range: {dataset} has clips 0..{len(clips) - 1}")
    clip = clips[index]
    audio = clip.audio if clip.stems is None else clip.stems["target"] + clip.stems["accompaniment"]
    return np.asarray(audio, dtype=np.float32), f"{dataset}/{clip.id}"


def embedded_excerpt(dataset: str, index: int, seconds: float) -> tuple[np.ndarray, str]:
    """The loudest ``seconds`` of embedded clip ``index``, peak-normalised: ``((L,) float32, label)``."""
    audio, label = embedded_clip(dataset, index)
    return loudest_excerpt(audio, clip_samples(seconds), label)


def loudest_excerpt(audio: np.ndarray, samples: int, label: str) -> tuple[np.ndarray, str]:
    """The loudest ``samples`` of ``audio`` ``(N,)`` (:func:`crop_loudest`), peak-normalised, and
    where they come from (``label (start-end s)``). AudioError (naming that) for a silent excerpt."""
    x, start = crop_loudest(audio, samples)
    where = f"{label} ({start / SAMPLE_RATE:.2f}-{(start + x.shape[0]) / SAMPLE_RATE:.2f} s)"
    return peak_normalise(x, name=where), where


def read_upload(content: bytes, name: str = "upload") -> np.ndarray:
    """Decode an uploaded audio file (any format soundfile reads: WAV, FLAC, OGG, MP3, ...).

    Returns mono float32 ``(L,)`` at 16 kHz. Raises :class:`AudioError` with one line naming the
    file for: an empty upload, bytes that are not audio, NaN/Inf samples, silence, or a clip
    shorter than :data:`MIN_UPLOAD_S`.
    """
    if not content:
        raise AudioError(f"{name}: the upload is empty (0 bytes)")
    try:
        data, sr = sf.read(io.BytesIO(bytes(content)), dtype="float32", always_2d=True)  # (L, C)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = re.sub(r"^Error opening <[^>]*>: ", "", one_line(exc)).rstrip(".")
        raise AudioError(f"{name}: cannot be read as audio ({reason}); upload a WAV, FLAC, OGG or MP3 file") from None
    check_audio(data.reshape(-1), name, allow_silent=True)  # no samples, NaN / Inf: dap.core.audio's checks
    x = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        x = resample(x, sr, SAMPLE_RATE)
    if x.shape[0] < MIN_UPLOAD_S * SAMPLE_RATE:
        raise AudioError(f"{name}: only {x.shape[0] / SAMPLE_RATE:.3f} s long; upload at least {MIN_UPLOAD_S} s")
    if np.max(np.abs(x)) < 1e-6:
        raise AudioError(f"{name}: the audio is silent (peak below -120 dBFS); nothing to restore")
    return np.ascontiguousarray(x, dtype=np.float32)


def crop_loudest(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """The ``length``-sample window of ``x`` ``(L,)`` with the most energy, and its start.

    Windows start on multiples of 256 samples; the first loudest one wins. A clip shorter than
    ``length`` is zero-padded at the end (start 0).
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.shape[0] <= length:
        return np.pad(x, (0, length - x.shape[0])), 0
    best = loudest_start(x, length, LENGTH_MULTIPLE)
    return x[best:best + length].copy(), best
