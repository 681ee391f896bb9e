"""The fuzz target, importable without atheris (tests/test_restore.py replays fuzz/regressions/ with it).

Each input is ``[suffix byte][task + output-suffix byte][gap-text length byte][gap text][file
bytes]``: the file bytes are written under the chosen suffix (or, when the first byte is >= 0x80,
a valid file is synthesised from them: :func:`synthesize`) and go through

* :func:`dap.core.audio.load_audio` (what every loader and notebook uses), and
* :func:`dap.restore.restore_file` (what ``python -m dap restore`` runs) with a checking identity
  window function instead of a deep-prior fit (a fit takes seconds; the windowing, resampling,
  cross-fade, gap handling and streaming I/O around it are the real ones).

Any :class:`dap.core.errors.DapError` is the expected answer to a bad file; every other exception is a
finding.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from dap import restore
from dap.core import audio
from dap.core.errors import DapError

HERE = Path(__file__).resolve().parent
SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".au", ".caf", ".w64", ".wav")
TASKS = ("denoise", "inpaint")
OUT_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".mp3", ".w64", ".au", ".caf")
WORK = Path(tempfile.mkdtemp(prefix="dap-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)


def split(data: bytes) -> tuple[str, str, str | None, bytes]:
    """The input layout above -> (suffix, task, gaps text, file bytes). A first byte >= 0x80
    selects the structure-aware mode (:func:`synthesize`)."""
    if len(data) < 3:
        return ".wav", "denoise", None, data
    suffix = SUFFIXES[data[0] % len(SUFFIXES)]
    task = TASKS[data[1] % 2]
    n = data[2] % 32
    gaps = data[3:3 + n].decode("latin-1") if task == "inpaint" else None
    return suffix, task, gaps, data[3 + n:]


_FORMAT_OF = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".au": "AU", ".caf": "CAF",
              ".w64": "W64"}
RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000, 44101, 7999, 1000, 768000, 0)
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT", "DOUBLE", "PCM_U8", "ULAW", "PCM_32", "VORBIS")


def synthesize(path: Path, suffix: str, payload: bytes) -> None:
    """Structure-aware mode: a *valid* file whose rate, channels, sample type, length and content
    come from ``payload`` (so the fuzzer reaches the windowing, resampling and gap code, not only
    the header parser). Content kinds: a byte pattern, silence, DC, NaN, Inf, a silent channel."""
    p = payload + bytes(12)
    sr = RATES[p[0] % len(RATES)] or 1000 + int.from_bytes(p[1:4], "little") % 199000
    channels = 1 + p[4] % 8
    fmt = _FORMAT_OF[suffix]
    subtype = SUBTYPES[p[5] % len(SUBTYPES)]
    if not sf.check_format(fmt, subtype):
        subtype = sf.default_subtype(fmt)
    frames = int(int.from_bytes(p[6:8], "little") / 65535 * 3.5 * sr)
    kind = p[8] % 6
    pattern = np.frombuffer(p[9:] or b"\x01", dtype=np.int8).astype(np.float64) / 128
    x = np.resize(pattern, frames * channels).reshape(frames, channels) if frames else np.zeros((0, channels))
    if kind == 1:
        x[:] = 0
    elif kind == 2:
        x[:] = pattern[0]
    elif kind in (3, 4) and frames and subtype in ("FLOAT", "DOUBLE"):
        x[p[1] % frames, 0] = np.nan if kind == 3 else np.inf
    elif kind == 5 and channels > 1:
        x[:, -1] = 0
    if subtype == "VORBIS" and sr > restore.VORBIS_MAX_SR:  # libsndfile segfaults (see dap.restore.writing)
        sr = restore.VORBIS_MAX_SR
    sf.write(str(path), x, sr, format=fmt, subtype=subtype)


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
    out = WORK / f"out{OUT_SUFFIXES[(data[1] >> 1) % len(OUT_SUFFIXES)] if len(data) > 1 else '.wav'}"
    if data and data[0] & 0x80:
        synthesize(src, suffix, payload)
    else:
        src.write_bytes(payload)
    for old in WORK.glob("out.*"):
        old.unlink()
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
    assert (info_out.channels, info_out.samplerate) == (info_in.channels, info_in.sr), (info_out, info_in)
    if info_out.subtype not in ("VORBIS", "OPUS", "MPEG_LAYER_III"):  # lossy encoders pad
        assert info_out.frames == info_in.frames, (info_out, info_in)
    assert rep.fits + rep.skipped_silent + len(rep.failed) == rep.windows * info_in.channels
    assert np.isfinite(sf.read(out)[0]).all()
    assert not [p for p in WORK.iterdir() if p.name.endswith(".part")]  # no temporary left


def seed_corpus(folder: Path) -> None:
    """Small valid files of every kind the harness understands (written once)."""
    folder.mkdir(parents=True, exist_ok=True)
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
            _keep(folder / f"seed{k}_{task}", head + path.read_bytes())
    for k in range(12):  # structure-aware seeds: every rate, 1-8 channels, every content kind
        gaps = b"0.3-0.5,1.1-1.2" if k % 2 else b""
        params = bytes([k, 7 * k % 256, 3, 1, k % 8, k % 8, 0x40, 0x80 + 10 * k, k % 6]) + bytes(range(0, 256, 7))
        _keep(folder / f"synth{k}", bytes([0x80 | (k % 7), k % 2, len(gaps)]) + gaps + params)


def _keep(path: Path, data: bytes) -> None:
    if not path.exists():
        path.write_bytes(data)


