"""The fuzz target, importable without atheris (tests/test_restore.py replays fuzz/regressions/ with it).

Each input is ``[suffix byte][task byte][gap-text length byte][gap text][file bytes]``: the file
bytes are written under the chosen suffix and go through

* :func:`dap.audio.load_audio` (what every loader and notebook uses), and
* :func:`dap.restore.restore_file` (what ``python -m dap restore`` runs) with a checking identity
  window function instead of a deep-prior fit (a fit takes seconds; the windowing, resampling,
  cross-fade, gap handling and streaming I/O around it are the real ones).

Any :class:`dap.errors.DapError` is the expected answer to a bad file; every other exception is a
finding.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from dap import audio, restore
from dap.errors import DapError

HERE = Path(__file__).resolve().parent
SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".au", ".caf", ".w64", ".wav")
TASKS = ("denoise", "inpaint")
WORK = Path(tempfile.mkdtemp(prefix="dap-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)


def split(data: bytes) -> tuple[str, str, str | None, bytes]:
    """The input layout above -> (suffix, task, gaps text, file bytes)."""
    if len(data) < 3:
        return ".wav", "denoise", None, data
    suffix = SUFFIXES[data[0] % len(SUFFIXES)]
    task = TASKS[data[1] % 2]
    n = data[2] % 32
    gaps = data[3:3 + n].decode("latin-1") if task == "inpaint" else None
    return suffix, task, gaps, data[3 + n:]


def checking_identity(x, mask, seed):
    """The window function: checks what restore hands a fit, returns its input."""
    assert x.dtype == np.float32 and x.ndim == 1, (x.dtype, x.shape)
    assert x.shape[0] % 256 == 0 and x.shape[0] >= 1024, x.shape
    assert np.isfinite(x).all()
    assert np.abs(x).max() <= 1.0 + 1e-3, np.abs(x).max()  # peak-normalised per channel (+ resampling ripple)
    if mask is not None:
        assert mask.length == x.shape[0]
        assert not x[~mask.observed()].any()
    return x


def TestOneInput(data: bytes) -> None:
    suffix, task, gaps, payload = split(data)
    src = WORK / f"in{suffix}"
    out = WORK / "out.wav"
    src.write_bytes(payload)
    if out.exists():
        out.unlink()
    try:
        y = audio.load_audio(src)
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
    except DapError:
        pass
    try:
        rep = restore.restore_file(src, out, task=task, gaps=gaps, process=checking_identity)
    except DapError:
        assert not out.exists()  # a failed restore leaves no output
        return
    info_in, info_out = restore.scan(src, allow_silent=True), sf.info(str(out))
    assert (info_out.frames, info_out.channels, info_out.samplerate) == \
        (info_in.frames, info_in.channels, info_in.sr), (info_out, info_in)
    assert rep.fits + rep.skipped_silent + len(rep.failed) == rep.windows * info_in.channels
    assert np.isfinite(sf.read(out)[0]).all()
    assert not [p for p in WORK.iterdir() if p.name.endswith(".part")]  # no temporary left


def seed_corpus(folder: Path) -> None:
    """Small valid files of every kind the harness understands (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    rng = np.random.default_rng(0)
    cases = [(".wav", 16000, 1, "PCM_16", 0.2), (".flac", 44100, 2, "PCM_24", 0.1), (".wav", 8000, 1, "FLOAT", 0.15),
             (".ogg", 48000, 1, "VORBIS", 0.1), (".aiff", 22050, 3, "PCM_16", 0.05), (".au", 11025, 1, "ULAW", 0.2),
             (".caf", 96000, 1, "PCM_32", 0.02), (".w64", 16000, 2, "DOUBLE", 0.08)]
    for k, (suffix, sr, ch, subtype, seconds) in enumerate(cases):
        x = 0.5 * np.sin(np.arange(int(sr * seconds))[:, None] / (3 + np.arange(ch))) + 0.01 * rng.standard_normal(
            (int(sr * seconds), ch))
        path = WORK / f"seed{suffix}"
        sf.write(path, x, sr, subtype=subtype)
        for task, gaps in ((0, b""), (1, b"0.01-0.03")):
            head = bytes([SUFFIXES.index(suffix), task, len(gaps)]) + gaps
            (folder / f"seed{k}_{task}").write_bytes(head + path.read_bytes())


