"""The user's corpus folder: argument checks, expected folders and files, and messages that say what
was expected where and what was found instead (every problem is one DatasetError)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from dap.core.audio import SAMPLE_RATE, load_audio
from dap.core.errors import AudioError, DatasetError
from dap.data.corpora import DIGITS, SPLITS, Corpus, DataArgumentError

#: SC09 file names: <digit>_<speaker hash>_nohash_<n>.wav
_SC09_NAME = re.compile(r"^(zero|one|two|three|four|five|six|seven|eight|nine)_([^_]+)_nohash_",
                        re.IGNORECASE)

def check_n(n) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataArgumentError(f"n must be a positive integer or None, got {n!r}")
    return int(n)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_length(length) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise DataArgumentError(f"length must be a positive number of samples, got {length!r}")
    return int(length)


def check_split(c: Corpus, split: str | None, valid: Sequence[str]) -> None:
    if split is not None and split not in valid:
        raise DataArgumentError(f"{c.dataset} ({c.title}): unknown split {split!r}; valid: "
                                f"{', '.join(valid)} or None")


def no_split(c: Corpus, split: str | None) -> None:
    if split is not None:
        raise DataArgumentError(f"{c.dataset} ({c.title}) has no train/valid/test split; "
                                f"pass split=None (got {split!r})")


def require_dir(c: Corpus, base: Path, path: Path, inner: Sequence[str] = ()) -> Path:
    """``path`` if it is a folder, else the one clear DatasetError."""
    if path.is_dir():
        return path
    state = "is a file, not a folder" if path.exists() else "does not exist"
    raise DatasetError(f"{c.dataset} ({c.title}): expected <root>/{c.pattern} under root {base}, "
                       f"but {path} {state}. {nearest_listing(path)}"
                       f"{inner_hint(base, inner, path.relative_to(base).parts[0])} "
                       f"To get it: {c.obtain}.")


def require_files(c: Corpus, base: Path, folder: Path, files: list[Path], glob: str,
                   shown: str | None = None) -> list[Path]:
    if files:
        return files
    raise DatasetError(f"{c.dataset} ({c.title}): expected {shown or f'{folder}/{glob}'} "
                       f"(pattern <root>/{c.pattern}), but no file matches. {listing(folder)} "
                       f"To get it: {c.obtain}.")


def inner_hint(base: Path, inner: Sequence[str], wrapper: str) -> str:
    """Say so when ``root`` looks like the corpus folder itself rather than its parent."""
    if any((base / name).exists() for name in inner):
        return (f" {base} looks like the {wrapper} folder itself: give its parent folder as the "
                f"root (or rename/move it so that <root>/{wrapper}/ exists).")
    return ""


def listing(folder: Path, k: int = 8) -> str:
    """'<folder> contains: a, b, ... (N entries).' or why it cannot be listed."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as exc:
        return f"{folder} cannot be listed ({exc.strerror or exc})."
    if not names:
        return f"{folder} is empty."
    more = f", ... ({len(names)} entries)" if len(names) > k else ""
    return f"{folder} contains: {', '.join(names[:k])}{more}."


def nearest_listing(path: Path) -> str:
    """List the closest existing ancestor of ``path``, so the message shows what *is* there."""
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    return listing(parent) if parent.is_dir() else ""


def read_file(c: Corpus, base: Path, path: Path) -> np.ndarray:
    """Mono 16 kHz float32 ``(L,)``; silent files come back as zeros for the caller to skip."""
    try:
        return load_audio(path, sr=SAMPLE_RATE, mono=True, allow_silent=True)
    except AudioError as exc:
        raise DatasetError(f"{c.dataset} ({c.title}): a file in the tree under {base} is unusable: "
                           f"{exc}. Replace it from the original archive or delete it.") from None


def samples_at_16k(c: Corpus, base: Path, path: Path) -> int:
    """Length the file will have at 16 kHz, from its header (no decoding)."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for a bad header
        raise DatasetError(f"{c.dataset} ({c.title}): a file in the tree under {base} is "
                           f"unusable: {path}: cannot be read as audio "
                           f"({' '.join(str(exc).split())}). Replace it from the original archive "
                           f"or delete it.") from None
    return int(info.frames) * SAMPLE_RATE // int(info.samplerate)


def relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def wavegan_files(c: Corpus, base: Path, name: str, split: str | None) -> list[tuple[Path, str]]:
    """``[(path, split)]`` of ``<root>/<name>/<split>/*.wav``, sorted."""
    check_split(c, split, SPLITS)
    top = require_dir(c, base, base / name, inner=SPLITS)
    present = [s for s in SPLITS if (top / s).is_dir()]
    wanted = present if split is None else [split]
    if not present or (split is not None and split not in present):
        need = top / (split or "{train,valid,test}")
        loose = f" ({len(list(top.glob('*.wav')))} wav file(s) lie directly in {top})" \
            if any(top.glob("*.wav")) else ""
        raise DatasetError(f"{name} ({c.title}): expected split folders {need}/*.wav (pattern "
                           f"<root>/{c.pattern}), but {need} does not exist{loose}. "
                           f"{listing(top)} To get it: {c.obtain}.")
    files = [(p, s) for s in wanted for p in sorted((top / s).glob("*.wav"))]
    if not files:
        where = top / (split or "{train,valid,test}")
        require_files(c, base, top / wanted[0], [], "*.wav", shown=f"{where}/*.wav")
    return files


def sc09_files(c: Corpus, base: Path, split: str | None) -> list[tuple[Path, dict]]:
    top = require_dir(c, base, base / "sc09", inner=SPLITS)
    present = [s for s in SPLITS if (top / s).is_dir()]
    if not present or (split is not None and split not in present):
        need = top / (split or "{train,valid,test}")
        raise DatasetError(f"digits ({c.title}): expected {need}/<Digit>_<hash>_nohash_<n>.wav, "
                           f"but {need} does not exist. {listing(top)} To get it: {c.obtain}.")
    out = []
    for s in (present if split is None else [split]):
        for p in sorted((top / s).glob("*.wav")):
            m = _SC09_NAME.match(p.name)
            if m:  # SC09 holds only the ten digit words; anything else is not ours to read
                word = m.group(1).lower()
                out.append((p, {"split": s, "label": word, "digit": DIGITS.index(word),
                                "speaker": m.group(2), "layout": "sc09"}))
    if not out:
        where = top / (split or present[0])
        raise DatasetError(f"digits ({c.title}): expected files named "
                           f"<Digit>_<hash>_nohash_<n>.wav (Zero..Nine) in {where}, but none "
                           f"match. {listing(where)} To get it: {c.obtain}.")
    return out


def speech_commands_files(c: Corpus, base: Path, candidates: Sequence[Path],
                           split: str | None) -> list[tuple[Path, dict]]:
    top = next((p for p in candidates if any((p / d).is_dir() for d in DIGITS)), None)
    if top is None:
        raise DatasetError(f"digits ({c.title}): expected {candidates[0]}/{{zero,...,nine}}/*.wav "
                           f"(Speech Commands layout), but it has no digit folders. "
                           f"{listing(candidates[0])} To get it: {c.obtain}.")
    held_out = {}
    if split is not None:
        for s, name in (("valid", "validation_list.txt"), ("test", "testing_list.txt")):
            lst = top / name
            if not lst.is_file():
                raise DatasetError(f"digits ({c.title}): split={split!r} needs {lst} (the "
                                   f"official Speech Commands split list), which is missing. "
                                   f"Use split=None to pool all files. {listing(top)}")
            for line in lst.read_text().split():
                held_out[line.strip()] = s
    out = []
    for word in DIGITS:
        for p in sorted((top / word).glob("*.wav")):
            rel = f"{word}/{p.name}"
            s = held_out.get(rel, "train") if split is not None else None
            if split is None or s == split:
                out.append((p, {"split": s, "label": word, "digit": DIGITS.index(word),
                                 "speaker": p.name.split("_")[0], "layout": "speech_commands"}))
    if not out:
        raise DatasetError(f"digits ({c.title}): no {{zero,...,nine}}/*.wav files"
                           f"{'' if split is None else f' in split {split!r}'} under {top}. "
                           f"{listing(top)} To get it: {c.obtain}.")
    return out


def reject_stem_mp4(c: Corpus, base: Path) -> None:
    """Raise a dedicated message when only the compressed MUSDB18 (.stem.mp4) is present."""
    mp4 = [p for pat in ("*.stem.mp4", "*/*.stem.mp4", "*/*/*.stem.mp4") for p in base.glob(pat)]
    if mp4:
        raise DatasetError(
            f"stems ({c.title}): found {len(mp4)} .stem.mp4 files (e.g. {mp4[0]}): that is the "
            f"compressed MUSDB18, which dap does not read. Expected the wav layout "
            f"<root>/{c.pattern}. Either {c.obtain}, or decode your copy to wav with the musdb "
            f"package's `musdbconvert <musdb18 folder> {base / 'musdb18hq'}`.")
