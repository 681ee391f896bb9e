"""Files written so that a reader never sees half of one, and where results live.

Files are replaced atomically (write to a temporary file in the same folder, fsync, rename):
killing the process at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that streams (or hands the path to a library):
    fsynced and renamed onto ``path`` when the block succeeds, removed when it fails, so readers see
    the old file or the complete new one (:func:`atomic_write_bytes` writes through it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text twin of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def results_root() -> Path:
    """``$DAP_RESULTS`` (set by run_all.sh) or ``<repository>/results``."""
    return Path(os.environ.get("DAP_RESULTS", Path(__file__).resolve().parents[2] / "results"))


#: Environment variable naming the cache folder (corpora, the speed probe); outside git.
ENV_CACHE = "DAP_CACHE"


def cache_root() -> Path:
    """``$DAP_CACHE`` or ``~/.cache/dap`` (outside git; never committed)."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "dap")


def notebook_dir(name: str) -> Path:
    """``results/<name>/``, created: where notebook ``name`` writes rows, tables and figures."""
    folder = results_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_checks(folder: str | os.PathLike, values: dict) -> Path:
    """Named scalars a notebook publishes (``checks.json``), read back by the notebook tests."""
    return atomic_write_text(Path(folder) / "checks.json", json.dumps(values, indent=2, sort_keys=True, default=float))
