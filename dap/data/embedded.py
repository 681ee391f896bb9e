"""The embedded default data set: committed FLAC clips under ``data/embedded`` and their manifest.

The clips are *substitutes* for the papers' corpora, built from real recordings by
``data/build_embedded.py`` (see ``data/embedded/ATTRIBUTION.md``). Splits and the public data-set
names they stand in for:

=========  ===========  ===================================================================
dataset    split        content
=========  ===========  ===================================================================
speech     speech_2s    32768-sample (2.048 s) windows of US-English voice prompts
digits     digits_1s    16384-sample spoken digits 0-9 in five voice sets
drums      drums_1s     16384-sample drum one-shots (real and rendered from real samples)
piano      piano_1s     16384-sample piano (real notes and rendered chorales)
noise      noise        5-30 s traffic / domestic recordings (``category`` column)
stems      stems        131072-sample (8.192 s) target + accompaniment pairs; the target is
                        exactly zero in the 1-s frames listed in ``silent_frame_list``
=========  ===========  ===================================================================

Every file's sha256 is in ``manifest.csv``; :func:`load_split` checks the files it reads (once per
process and file, re-checked when the file changes) and raises :class:`DatasetError` on any
mismatch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from dap.data.clip import Clip
from dap.core.errors import DatasetError

#: ``<repository>/data/embedded``, found relative to this file.
EMBEDDED_ROOT = Path(__file__).resolve().parents[2] / "data" / "embedded"

#: Public data-set name -> embedded split.
SPLIT_OF_DATASET = {"speech": "speech_2s", "digits": "digits_1s", "drums": "drums_1s",
                    "piano": "piano_1s", "noise": "noise", "stems": "stems"}
DATASET_OF_SPLIT = {v: k for k, v in SPLIT_OF_DATASET.items()}

REQUIRED_COLUMNS = ("file", "split", "id", "seconds", "samples", "sha256", "source_package",
                    "source_version", "original_file", "license", "kind")

_REBUILD_HINT = ("restore the committed files (git checkout -- data/embedded) or rebuild them "
                 "(python data/build_embedded.py)")

# (resolved path, size, mtime_ns) -> sha256 already checked in this process
_VERIFIED: set[tuple[str, int, int, str]] = set()


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else EMBEDDED_ROOT


def _split_name(split: str) -> str:
    """Accept a split (``speech_2s``) or the public data-set name (``speech``)."""
    if split in DATASET_OF_SPLIT:
        return split
    if split in SPLIT_OF_DATASET:
        return SPLIT_OF_DATASET[split]
    raise DatasetError(f"unknown embedded split {split!r}: choose one of "
                       f"{', '.join(DATASET_OF_SPLIT)} (or {', '.join(SPLIT_OF_DATASET)})")


def read_manifest(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The manifest as a DataFrame, one row per file.

    Text columns are strings ("" when not applicable); ``samples`` is int and ``seconds`` float.
    Raises :class:`DatasetError` when the manifest is missing or lacks a required column.
    """
    path = _root(root) / "manifest.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: the embedded data manifest is missing; {_REBUILD_HINT}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser errors
        raise DatasetError(f"{path}: cannot be read as CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        df["samples"] = df["samples"].astype(int)
        df["seconds"] = df["seconds"].astype(float)
    except ValueError as exc:
        raise DatasetError(f"{path}: non-numeric samples/seconds ({exc})") from None
    return df


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (read in 1 MiB chunks); the builder uses it too."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_files(root: Path, rows: pd.DataFrame) -> None:
    """Hash every file of ``rows`` not yet verified; raise naming all the bad ones."""
    bad = []
    for rel, want in zip(rows["file"], rows["sha256"]):
        path = root / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            bad.append(f"{rel} (missing)")
            continue
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, want)
        if key in _VERIFIED:
            continue
        if sha256_file(path) != want:
            bad.append(f"{rel} (sha256 mismatch)")
            continue
        _VERIFIED.add(key)
    if bad:
        raise DatasetError(f"embedded data at {root}: {len(bad)} file(s) fail verification: "
                           f"{'; '.join(bad)}. {_REBUILD_HINT[0].upper()}{_REBUILD_HINT[1:]}.")


def verify(split: str | None = None, root: str | os.PathLike | None = None) -> None:
    """Check the sha256 of every file of ``split`` (all splits when None) against the manifest.

    Raises :class:`DatasetError` naming every file that is missing or differs. Files already
    verified in this process (same path, size and mtime) are not hashed again.
    """
    base = _root(root)
    df = read_manifest(base)
    if split is not None:
        df = df[df["split"] == _split_name(split)]
    _check_files(base, df)


def _read(path: Path, samples: int) -> np.ndarray:
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}); {_REBUILD_HINT}") from None
    if sr != 16000 or x.ndim != 1 or len(x) != samples:
        raise DatasetError(f"{path}: expected mono 16 kHz with {samples} samples, got "
                           f"{x.shape} at {sr} Hz; {_REBUILD_HINT}")
    return x


def load_split(split: str, n: int | None = None, seed: int = 0,
               root: str | os.PathLike | None = None, verify: bool = True) -> list[Clip]:
    """Load ``n`` clips of an embedded split (all when ``n`` is None), sorted by id.

    split: a split name (``speech_2s``) or public data-set name (``speech``). The ``n`` clips are
    drawn without replacement by ``numpy.random.default_rng(seed)`` from the ids in sorted order,
    then returned sorted by id. Each :class:`Clip` has ``audio`` float32 ``(L,)``,
    ``dataset`` = the public name, ``source`` = "embedded", ``kind`` and ``meta`` (the manifest
    row) from the manifest. For ``stems`` ``audio`` is the target and ``stems`` holds
    ``{"target": (L,), "accompaniment": (L,)}``; ``meta`` is the target's row plus
    ``accompaniment_file``. Raises :class:`DatasetError` when ``n`` exceeds the split's size or a
    file fails verification.
    """
    name = _split_name(split)
    base = _root(root)
    df = read_manifest(base)
    rows = df[df["split"] == name]
    if rows.empty:
        raise DatasetError(f"{base / 'manifest.csv'}: no files for split {name!r}; {_REBUILD_HINT}")
    if name == "stems":
        if "role" not in rows.columns or "stem_group" not in rows.columns:
            raise DatasetError(f"{base / 'manifest.csv'}: stems need the role and stem_group columns")
        ids = sorted(rows["stem_group"].unique())
    else:
        ids = sorted(rows["id"])
    if n is not None:
        if n < 0:
            raise DatasetError(f"load_split({split!r}): n must be >= 0, got {n}")
        if n > len(ids):
            raise DatasetError(f"load_split({split!r}): asked for {n} clips but the embedded split "
                               f"{name!r} has only {len(ids)}")
        pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
        ids = sorted(ids[i] for i in pick)
    key = "stem_group" if name == "stems" else "id"
    rows = rows[rows[key].isin(ids)]
    if verify:
        _check_files(base, rows)
    dataset = DATASET_OF_SPLIT[name]
    clips = []
    for cid in ids:
        group = rows[rows[key] == cid]
        if name == "stems":
            by_role = {r["role"]: r for r in group.to_dict("records")}
            if set(by_role) != {"target", "accompaniment"}:
                raise DatasetError(f"{base / 'manifest.csv'}: stem group {cid!r} needs one target "
                                   f"and one accompaniment row, has {sorted(by_role)}")
            meta = dict(by_role["target"])
            meta["accompaniment_file"] = by_role["accompaniment"]["file"]
            stems = {role: _read(base / r["file"], int(r["samples"])) for role, r in by_role.items()}
            clips.append(Clip(id=cid, dataset=dataset, audio=stems["target"], source="embedded",
                              kind=meta["kind"], stems=stems, meta=meta))
        else:
            meta = group.iloc[0].to_dict()
            audio = _read(base / meta["file"], int(meta["samples"]))
            clips.append(Clip(id=cid, dataset=dataset, audio=audio, source="embedded",
                              kind=meta["kind"], meta=meta))
    return clips
