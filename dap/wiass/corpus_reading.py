"""Reading a built paper-2 corpus (:mod:`dap.wiass.corpus` builds it): its manifest, the silent
spans it records, and its fragments per split."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import soundfile as sf

from dap.core.errors import DatasetError
from dap.wiass.fragment import SPLITS, Fragment

#: Written last by a build: a folder without it is an unfinished build.
INFO = "BUILD_INFO.json"
MANIFEST = "manifest.csv"


def read_manifest(folder) -> list[dict]:
    with open(Path(folder) / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def parse_spans(text: str) -> list[tuple[int, int, str]]:
    """``"a-b:kind;..."`` -> ``[(a, b, kind), ...]`` (the manifest's ``silent_spans``)."""
    out = []
    for item in filter(None, text.split(";")):
        rng, kind = item.split(":")
        a, b = rng.split("-")
        out.append((int(a), int(b), kind))
    return out


def load_corpus(folder, verify: bool = False) -> dict[str, list[Fragment]]:
    """Fragments of a built corpus per split (``group`` = piece, ``family`` = "choir-soprano",
    ``source`` = "generated"; the manifest row in ``meta``). ``verify``: check every sha256."""
    folder = Path(folder)
    if not (folder / INFO).is_file():
        raise DatasetError(f"{folder}: not a finished wiass corpus (no {INFO}); build it with "
                           f"python -m dap corpus wiass --out {folder}")
    out = {s: [] for s in SPLITS}
    for row in read_manifest(folder):
        stems = []
        for stem in ("target", "accompaniment"):
            path = folder / row[f"{stem}_file"]
            if verify and hashlib.sha256(path.read_bytes()).hexdigest() != row[f"{stem}_sha256"]:
                raise DatasetError(f"{path}: sha256 differs from {folder / MANIFEST}")
            stems.append(sf.read(str(path), dtype="float32")[0])
        out[row["split"]].append(Fragment(row["id"], stems[0], stems[1], group=row["piece"],
                                          family="choir-soprano", source="generated", meta=row))
    return out
