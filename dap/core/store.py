"""The results contract: one tidy row per fit and metric, written atomically, resumable.

A *fit* (one design on one clip for one task, with its seed and settings) yields several rows:
one per (selection rule, metric). All rows of a fit are written together, so after an
interruption a fit is either fully recorded or absent, and a rerun skips exactly the fits that
are recorded (:meth:`ResultStore.has`).

Each fit's rows are first written, atomically, to a file of their own (``fits/rows/<fit id>.csv``
for ``rows.csv``), then compacted into ``rows.csv`` under a lock. So several writers (two drivers on
one store, machines sharing a file system) never lose each other's fits: a fit file that has not
reached ``rows.csv`` (its writer died between the two steps, or another machine wrote it) is read
with it, and compacted by the next write. Writing the same fit twice leaves one set of rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from dap.core.errors import DapError
from dap.core.files import atomic_write_text

#: Columns every row has, in this order (extra columns may follow). ``code``: the fingerprint of the
#: code that computed the row (:func:`dap.core.fingerprint.code_fingerprint`); ``precision_class``: its
#: resolved precision and device class (:func:`dap.core.device.precision_class`). Both are in its fit id too.
ROW_COLUMNS = [
    "fit_id", "task", "dataset", "source", "clip_id", "design", "seed", "profile", "selection",
    "metric", "value", "iterations", "best_iteration", "seconds", "device", "precision", "status",
    "error", "dap_version", "git_commit", "code", "precision_class",
]


def fit_id(config: dict) -> str:
    """Stable 12-hex id of a fit's identifying settings (order-independent). Callers put the code's
    fingerprint and the precision class in ``config`` (docs/reference.md), so that a fit of other code
    or numerics gets another id."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


class ResultStore:
    """``rows.csv`` of one notebook, with resume.

    >>> store = ResultStore("results/02_table1_gaussian_denoising")
    >>> if not store.has(fid): store.add(rows)   # rows: list of dicts with ROW_COLUMNS
    """

    def __init__(self, folder: str | os.PathLike, filename: str = "rows.csv"):
        self.folder = Path(folder)
        self.path = self.folder / filename
        self.fits_folder = self.folder / "fits" / self.path.stem  # one file per fit
        self._rows = self._read()

    def _read(self) -> pd.DataFrame:
        """``rows.csv`` and every fit file not yet compacted into it."""
        rows = _read_rows(self.path) if self.path.exists() else pd.DataFrame(columns=ROW_COLUMNS)
        compacted = set(rows["fit_id"]) if len(rows) else set()
        pending = [_read_rows(f) for f in self._fit_files() if f.stem not in compacted]
        return pd.concat([rows, *pending], ignore_index=True) if pending else rows

    def _fit_files(self) -> list[Path]:
        if not self.fits_folder.is_dir():
            return []
        return sorted(Path(e.path) for e in os.scandir(self.fits_folder) if e.name.endswith(".csv"))

    def _fit_file(self, fid: str) -> Path:
        return self.fits_folder / f"{fid}.csv"

    @property
    def rows(self) -> pd.DataFrame:
        """All rows recorded so far (a copy)."""
        return self._rows.copy()

    def has(self, fid: str) -> bool:
        """Whether the fit ``fid`` is already recorded (successfully or as failed for a reason that
        would fail again: infrastructure failures are never recorded, see dap.core.failures), here
        or, since this store was read, by another writer (its fit file is looked for on disk: the
        grid asks just before a fit starts)."""
        if len(self._rows) and bool((self._rows["fit_id"] == fid).any()):
            return True
        return self._fit_file(fid).exists()

    def add(self, rows: list[dict]) -> None:
        """Record all rows of one fit: its fit file, then ``rows.csv`` rewritten atomically.

        Under an exclusive lock, the store is read again first: rows another process added since
        (two notebooks sharing a store, a run still finishing after its runner was killed) are
        kept, never overwritten, and a fit's rows replace any earlier rows of the same fit, except
        that a success is never replaced by a failure: when the new rows of a fit hold no ``ok`` row
        and the recorded ones do (a duplicate run that failed later), the recorded rows stay.
        """
        if not rows:
            raise ValueError("ResultStore.add needs at least one row")
        new = pd.DataFrame(rows)
        for col in ROW_COLUMNS:
            if col not in new:
                new[col] = None
        new = new[ROW_COLUMNS + [c for c in new.columns if c not in ROW_COLUMNS]]
        fids = set(new["fit_id"])
        with _locked(self.folder / f".{self.path.name}.lock"):
            current = self._read()
            fids -= _ok_fits(current) - _ok_fits(new)  # ok beats failed
            new = new[new["fit_id"].isin(fids)]
            for fid in sorted(fids):  # the durable record first: one file per fit
                buf = io.StringIO()
                new[new["fit_id"] == fid].to_csv(buf, index=False)
                atomic_write_text(self._fit_file(fid), buf.getvalue())
            old = current[~current["fit_id"].isin(fids)] if len(current) else current
            merged = new if old.empty else pd.concat([old, new], ignore_index=True)
            buf = io.StringIO()
            merged.to_csv(buf, index=False)
            atomic_write_text(self.path, buf.getvalue())
        self._rows = merged


def _read_rows(path: Path) -> pd.DataFrame:
    """The rows of one result file; DapError naming it when it cannot be read."""
    try:
        rows = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DapError(f"{path}: the result rows cannot be read ({' '.join(str(exc).split())}); "
                       f"move the file away to recompute its fits") from None
    if "fit_id" not in rows.columns:
        raise DapError(f"{path}: not a result file (no fit_id column); move it away to recompute")
    return rows


def _ok_fits(rows: pd.DataFrame) -> set:
    """Fit ids with at least one ``ok`` row."""
    return set(rows.loc[rows["status"] == "ok", "fit_id"]) if len(rows) and "status" in rows else set()


@contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: one writer per store is the documented use
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
