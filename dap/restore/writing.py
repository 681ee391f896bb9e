"""Writing the output: its format and sample type, the atomic temporary file, and the block writer."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from dap.core.errors import AudioError
from dap.core.files import atomic_path
from dap.core.text import one_line

_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".aif": "AIFF",
            ".aiff": "AIFF", ".aifc": "AIFF", ".au": "AU", ".snd": "AU", ".caf": "CAF", ".w64": "W64",
            ".rf64": "RF64", ".mp3": "MP3"}

#: libsndfile 1.2.2 + libvorbis crash (SIGSEGV, no error) when encoding Vorbis above this rate
#: (found by fuzzing; 200000 Hz works, 200001 Hz crashes).
VORBIS_MAX_SR = 200000

_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


def output_format(path: str | os.PathLike, subtype: str) -> tuple[str, str]:
    """``(format, subtype)`` to write ``path``: the format follows the suffix; the input's
    ``subtype`` is kept when that format can hold it, else the format's default."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give an output file name")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None or fmt not in sf.available_formats():
        known = ", ".join(sorted({s for s, f in _FORMATS.items() if f in sf.available_formats()}))
        raise AudioError(f"{path}: cannot write this format (suffix {path.suffix or 'missing'!r}); use one of {known}")
    if not (subtype and sf.check_format(fmt, subtype)):
        subtype = sf.default_subtype(fmt)
    return fmt, subtype


def check_encodable(path: str | os.PathLike, fmt: str, subtype: str, sr: int) -> None:
    """AudioError for an output the encoder cannot take, *before* libsndfile is asked to."""
    if subtype == "VORBIS" and sr > VORBIS_MAX_SR:
        raise AudioError(f"{path}: Ogg Vorbis cannot hold {sr} Hz audio (at most {VORBIS_MAX_SR} Hz); write "
                         f".wav or .flac instead")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`dap.core.files.atomic_path` for an output file: a temporary ``.part`` file beside
    ``path``, renamed onto it when the block succeeds (readers see the old file or the complete new
    one, never a part); a directory or an unwritable folder -> AudioError naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give an output file name")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise AudioError(f"{path}: cannot write the output: {blocker} is a file, not a folder")
    try:
        with atomic_path(path, suffix=".part") as tmp:
            yield tmp
    except OSError as exc:
        raise AudioError(f"{path}: cannot write the output ({one_line(exc)})") from None


class BlockWriter:
    """Block writer into an open SoundFile. PCM output is clipped to [-1, 1] and rounded to the
    nearest step here (libsndfile truncates, so float noise of the processing would cost 1 LSB)."""

    def __init__(self, f: sf.SoundFile, subtype: str, path: Path):
        self.f, self.path, self.frames = f, path, 0
        self.pcm = subtype.startswith("PCM") or subtype in ("ULAW", "ALAW")
        self.step = 2.0 ** (_PCM_BITS[subtype] - 1) if subtype in _PCM_BITS else None

    def write(self, y: np.ndarray) -> None:
        """y: ``(C, n)``."""
        if y.shape[1] == 0:
            return
        if self.pcm:
            y = np.clip(y, -1.0, 1.0)
        if self.step:
            y = np.round(y * self.step) / self.step
        try:
            self.f.write(np.ascontiguousarray(y.T))
        except Exception as exc:
            raise AudioError(f"{self.path}: cannot write the output ({one_line(exc)})") from None
        self.frames += y.shape[1]
