"""Reading the input: probe its header, scan it once (checks, peaks), and stream it block by block."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from dap.core.audio import check_audio_path
from dap.core.errors import AudioError
from dap.core.text import one_line
from dap.restore.defaults import MAX_CHANNELS, MAX_SR, MIN_SECONDS, MIN_SR, READ_BLOCK_SAMPLES


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` and :func:`scan` learn about an input file."""

    path: Path
    sr: int
    channels: int
    frames: int                  # counted while reading (a truncated file counts what is there)
    format: str
    subtype: str
    peaks: tuple[float, ...] = ()  # max |x| per channel

    @property
    def seconds(self) -> float:
        return self.frames / self.sr


def _unreadable(path: Path, exc: BaseException) -> AudioError:
    return AudioError(f"{path}: cannot be read as audio ({one_line(exc)})")


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` and read its header: AudioError (naming the file) when it is not usable audio."""
    path = check_audio_path(path)
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # LibsndfileError, RuntimeError, TypeError, OSError...
        raise _unreadable(path, exc) from None
    if info.channels < 1:
        raise AudioError(f"{path}: the file has no channels")
    if info.channels > MAX_CHANNELS:
        raise AudioError(f"{path}: {info.channels} channels; restore handles at most {MAX_CHANNELS} (one fit per "
                         f"channel and window)")
    if not MIN_SR <= info.samplerate <= MAX_SR:
        raise AudioError(f"{path}: unsupported sample rate {info.samplerate} Hz (accepted: {MIN_SR}-{MAX_SR} Hz)")
    return AudioInfo(path=path, sr=int(info.samplerate), channels=int(info.channels), frames=int(info.frames),
                     format=str(info.format), subtype=str(info.subtype))


def scan(path: str | os.PathLike, allow_silent: bool = False) -> AudioInfo:
    """Read the whole file once, block by block: count frames, measure each channel's peak and
    reject NaN/Inf samples, empty and (unless ``allow_silent``) all-zero files. Memory: one block."""
    info = probe(path)
    peaks = np.zeros(info.channels)
    frames = 0
    for block in read_blocks(info.path):
        bad = ~np.isfinite(block)
        if bad.any():
            frame, channel = np.argwhere(bad)[0]
            raise AudioError(f"{info.path}: contains NaN or Inf samples (first at {(frames + frame) / info.sr:.3f} s, "
                             f"channel {channel + 1})")
        peaks = np.maximum(peaks, np.abs(block).max(axis=0))
        frames += block.shape[0]
    if frames == 0:
        raise AudioError(f"{info.path}: the file holds no samples")
    if not allow_silent and not peaks.any():
        raise AudioError(f"{info.path}: the audio is silent (all samples are zero)")
    if frames / info.sr < MIN_SECONDS:
        raise AudioError(f"{info.path}: too short to restore: {frames} sample(s) = {1000 * frames / info.sr:.2f} ms "
                         f"(at least {1000 * MIN_SECONDS:.0f} ms are needed)")
    return AudioInfo(path=info.path, sr=info.sr, channels=info.channels, frames=frames, format=info.format,
                     subtype=info.subtype, peaks=tuple(float(p) for p in peaks))


def read_blocks(path: Path, dtype: str = "float32") -> Iterator[np.ndarray]:
    """Blocks ``(frames, C)`` of ``path`` as ``dtype``; read errors -> AudioError naming the file."""
    try:
        with sf.SoundFile(str(path)) as f:
            frames = max(256, READ_BLOCK_SAMPLES // max(1, f.channels))
            while True:
                block = f.read(frames, dtype=dtype, always_2d=True)
                if block.shape[0] == 0:
                    return
                yield block
    except AudioError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None


class SpanReader:
    """Sequential reads of ``[a, b)`` spans with non-decreasing ``a`` (no seeking needed), keeping
    only the samples still ahead: ``get(a, b) -> (C, b - a)`` float32, zero past the end."""

    def __init__(self, path: Path, channels: int):
        self._it = read_blocks(path)
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._start = 0  # frame index of _buf[:, 0]
        self._done = False

    def get(self, a: int, b: int) -> np.ndarray:
        if a < self._start:
            raise ValueError("reads must not go backwards")
        while self._start + self._buf.shape[1] < b and not self._done:
            block = next(self._it, None)
            if block is None:
                self._done = True
                break
            self._buf = np.concatenate([self._buf, block.T], axis=1)
            self._drop_before(a)  # skipping ahead keeps only one block in memory
        self._drop_before(a)
        if self._start < a:  # a lies past the end of the file
            return np.zeros((self._buf.shape[0], b - a), dtype=np.float32)
        out = self._buf[:, : b - a]
        if out.shape[1] < b - a:
            out = np.pad(out, ((0, 0), (0, b - a - out.shape[1])))
        return out

    def _drop_before(self, a: int) -> None:
        cut = min(max(0, a - self._start), self._buf.shape[1])
        if cut:
            self._buf = self._buf[:, cut:]
            self._start += cut
