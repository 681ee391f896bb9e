"""A reference folder checked against the code (``python -m dap report --check DIR``) and its derived
files regenerated from its rows (``python -m dap report DIR``); docs/reference.md explains both.

A reference folder keeps every notebook's rows compressed, ``rows/<notebook>/<file>.csv.gz``, and at
its top the files derived from them: :data:`GENERATED` is the one list of which function derives
which files (add an entry to derive more, e.g. tables from rows). The check stops at the first
problem, in this order:

1. a stale row, in sorted file order: a row file without the ``code`` / ``precision_class`` columns,
   or a row whose ``code`` is not the current fingerprint of its family
   (:func:`dap.core.fingerprint.code_fingerprint`) or whose ``precision_class`` is empty;
2. a derived file that differs from what its function writes from the rows now (derived into a
   temporary folder, compared line by line), or is missing;
3. a published table (``<table>.csv`` / ``.md`` with its ``<table>.sources.json``) that differs from
   what :mod:`dap.report.rederive` makes again from the rows of its fits.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from dap.claims.table import REFERENCE_ROWS, write_claims
from dap.core.errors import DapError
from dap.core.files import atomic_write_bytes
from dap.core.fingerprint import CODE_MODULES, code_fingerprint
from dap.core.store import ResultStore
from dap.report.reference import write_reference_summary

#: The columns that say which code and numerics computed a row (both in its fit id too).
STAMP_COLUMNS = ("code", "precision_class")


class StaleReference(DapError):
    """A reference folder's rows or derived files are not what the current code gives."""


@dataclass(frozen=True)
class Generated:
    """Files at a reference folder's top that one function derives from its rows."""

    files: tuple[str, ...]              #: their names
    make: Callable[[Path, Path], None]  #: ``make(reference, out)`` writes ``files`` into the folder ``out``
    what: str                           #: one phrase: what they are


def _claims(reference: Path, out: Path) -> None:
    # no profile: per claim the largest profile that has rows (a reference may mix profiles)
    write_claims(reference, out / "CLAIMS.md")


#: Every file derived from a reference's rows, and the function that derives it.
GENERATED: list[Generated] = [
    Generated(("CLAIMS.md", "CLAIMS.csv"), _claims, "every claim tested on the rows (dap.claims.table)"),
    # after the claims: it reads the CLAIMS.csv just derived
    Generated(("SUMMARY.md",), write_reference_summary, "what ran where, its compute, the claims' headline"),
]


def reference_row_files(reference: str | Path) -> list[Path]:
    """The row files of a reference folder, ``rows/<notebook>/<file>.csv.gz``, sorted.

    Args:
        reference: the reference folder.

    Returns:
        Their paths; DapError naming the folder when it is not a reference folder or has no rows.
    """
    reference = Path(reference)
    if not reference.is_dir():
        raise DapError(f"{reference} is not a folder")
    files = sorted((reference / REFERENCE_ROWS).glob("*/*.csv.gz"))
    if not files:
        raise DapError(f"{reference} has no row files {REFERENCE_ROWS}/<notebook>/<file>.csv.gz: not a reference "
                       f"folder (docs/reference.md)")
    return files


def stale_row(rows: pd.DataFrame) -> tuple[int, str] | None:
    """The first row of ``rows`` that the current code would not have written, and why.

    Args:
        rows: the rows of one file.

    Returns:
        ``(index from 0, reason)``, or None when every row carries the current code and a precision class.
    """
    missing = [c for c in STAMP_COLUMNS if c not in rows.columns]
    if missing:
        return 0, (f"no {' / '.join(missing)} column: written before fit ids covered the code and the precision")
    for i, (code, pclass) in enumerate(zip(rows["code"], rows["precision_class"])):
        why = _stale_code(code) or (None if _filled(pclass) else "no precision_class")
        if why:
            return i, why
    return None


def _filled(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _stale_code(code) -> str | None:
    if not _filled(code):
        return "no code value"
    family = code.partition(":")[0]
    if family not in CODE_MODULES:
        return f"code {code!r} names no known family ({', '.join(CODE_MODULES)})"
    current = code_fingerprint(family)
    return None if code == current else f"computed by code {code}, the current code is {current}"


def first_difference(committed: str, fresh: str) -> tuple[int, str] | None:
    """The first line (from 1) where ``committed`` and ``fresh`` differ, and how.

    Args:
        committed: the text in the reference folder.
        fresh: the text the rows give now.

    Returns:
        ``(line, description)``, or None when the texts are equal.
    """
    if committed == fresh:
        return None
    a, b = committed.splitlines(), fresh.splitlines()
    for n, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return n, f"the file has {_short(x)}, the rows give {_short(y)}"
    n = min(len(a), len(b)) + 1
    if len(a) != len(b):
        return n, ("the file has more lines than the rows give" if len(a) > len(b)
                   else f"the file ends where the rows give {_short(b[n - 1])}")
    return n, "the files differ in line endings or the final newline"


def _short(line: str, width: int = 80) -> str:
    return repr(line if len(line) <= width else line[:width] + "...")


def _derive(reference: Path, out: Path) -> list[tuple[Path, str]]:
    """Every :data:`GENERATED` file derived into ``out``: ``(path in out, name)`` in registry order."""
    made = []
    for g in GENERATED:
        g.make(reference, out)
        for name in g.files:
            if not (out / name).is_file():
                raise DapError(f"{g.what}: its function did not write {name}")
            made.append((out / name, name))
    return made


def check_reference(reference: str | Path) -> str:
    """Whether every row of ``reference`` was computed by the current code and every derived file is
    what its function writes from the rows now.

    Args:
        reference: a reference folder (``rows/<notebook>/<file>.csv.gz`` and the derived files).

    Returns:
        ``"N row files, M generated files, all current"``; raises :class:`StaleReference` naming the
        first stale row (file, row number from 1, fit id) or the first differing file and line.
    """
    reference = Path(reference)
    files = reference_row_files(reference)
    for path in files:
        rows = ResultStore(path.parent, path.name).rows
        found = stale_row(rows)
        if found is not None:
            i, why = found
            fid = rows["fit_id"].iloc[i] if len(rows) else "none: the file has no rows"
            raise StaleReference(f"{reference} is not current: {path.relative_to(reference).as_posix()} row {i + 1} "
                                 f"(fit {fid}): {why}; rerun its notebook and replace the reference's rows "
                                 f"(docs/reference.md)")
    with tempfile.TemporaryDirectory(prefix="dap-report-check-") as tmp:
        made = _derive(reference, Path(tmp))
        for fresh, name in made:
            committed = reference / name
            if not committed.is_file():
                raise StaleReference(f"{reference} is not current: {name} is missing (python -m dap report "
                                     f"{reference} writes it)")
            diff = first_difference(committed.read_text(encoding="utf-8"), fresh.read_text(encoding="utf-8"))
            if diff is not None:
                raise StaleReference(f"{reference} is not current: {name} line {diff[0]}: {diff[1]}; it is derived "
                                     f"from the rows (python -m dap report {reference} rewrites it; hand-written "
                                     f"notes belong in a file nothing derives)")
    from dap.report.rederive import check_tables  # the studies' row formats: only when checking

    tables, diff = check_tables(reference, first_difference)
    if diff is not None:
        raise StaleReference(f"{reference} is not current: {diff[0]} {diff[1]}; it is made from the rows by its "
                             f"notebook (rerun it with --reference, docs/reference.md)")
    return f"{len(files)} row files, {len(made)} generated files, {tables} published tables re-derived, all current"


def regenerate(reference: str | Path) -> list[Path]:
    """Rewrite every :data:`GENERATED` file of ``reference`` from its rows (each file atomically,
    after all of them were derived, so a failure leaves the folder as it was).

    Args:
        reference: a reference folder.

    Returns:
        The paths written, in registry order.
    """
    reference = Path(reference)
    reference_row_files(reference)  # refuses a folder that is not a reference
    with tempfile.TemporaryDirectory(prefix="dap-report-") as tmp:
        made = _derive(reference, Path(tmp))
        return [atomic_write_bytes(reference / name, fresh.read_bytes()) for fresh, name in made]
