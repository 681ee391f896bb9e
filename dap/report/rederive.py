"""The published tables of a reference folder made again from its rows (``python -m dap report --check``).

A notebook publishes a table with :func:`dap.report.tables.publish_table`, which also writes
``<table>.sources.json``: its arguments (the caption's text among them) and the fit ids of its rows and
baselines. Here the same function runs on the reference's rows of those fit ids, into a temporary
folder, and the result is compared with the published ``<table>.csv`` (numbers, to a relative 1e-9:
the stored rows are summed in another order than the notebook's) and ``<table>.md`` (line by line).
Figures (PNG) are not compared: their bytes depend on the plotting library.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from dap.claims.table import REFERENCE_ROWS
from dap.core.errors import DapError
from dap.core.store import ResultStore
from dap.report.reference import PUBLISHED_INDEX, rows_folder
from dap.report.tables import SOURCES_SUFFIX, publish_table
from dap.studies.common import BASELINE_FILE
from dap.studies.separation import per_source_rows

#: Relative tolerance of a re-derived table's numbers against the published ones.
RTOL = 1e-9


def _stored(reference: Path, notebook: str, name: str, ids: list[str] | None) -> pd.DataFrame | None:
    """The rows of ``ids`` in the reference's ``rows/<store>/<name>.gz`` (per source, as the studies give them)."""
    if ids is None:
        return None
    path = reference / REFERENCE_ROWS / rows_folder(notebook) / f"{name}.gz"
    if not path.exists():
        raise DapError(f"{path} is missing: its table names {len(ids)} fits in it")
    rows = ResultStore(path.parent, path.name).rows
    rows = rows[rows["fit_id"].astype(str).isin(set(ids))]
    missing = set(ids) - set(rows["fit_id"].astype(str))
    if missing:
        raise DapError(f"{path}: {len(missing)} of the table's fits are not in the rows, e.g. {sorted(missing)[0]}")
    return per_source_rows(rows.reset_index(drop=True))


def rederive_table(reference: str | Path, sources_file: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Make ``<table>.csv`` and ``<table>.md`` again into ``out`` from ``sources_file`` and the rows.

    Args:
        reference: the reference folder (its rows and ``published.csv``).
        sources_file: a ``<table>.sources.json`` at the reference's top.
        out: the folder to write into.

    Returns:
        The paths of the CSV and the markdown written; DapError naming what is missing.
    """
    reference, sources_file = Path(reference), Path(sources_file)
    index = pd.read_csv(reference / PUBLISHED_INDEX, dtype=str)
    owner = index.loc[index["file"] == sources_file.name, "notebook"]
    if owner.empty:
        raise DapError(f"{sources_file.name} is not in {PUBLISHED_INDEX}: which notebook published it?")
    notebook = owner.iloc[0]
    try:
        src = json.loads(sources_file.read_text(encoding="utf-8"))
        fields = {k: src[k] for k in ("table", "selections", "extra_metrics", "caption", "fit_ids", "baseline_fit_ids")}
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DapError(f"{sources_file}: not a table's sources ({type(exc).__name__}: {exc}); rerun its notebook "
                       f"with --reference to write it again") from None
    src = fields
    rows = _stored(reference, notebook, "rows.csv", src["fit_ids"])
    baselines = _stored(reference, notebook, BASELINE_FILE, src["baseline_fit_ids"])
    publish_table(rows, src["table"], out, src["caption"], selections=tuple(src["selections"]),
                  extra_metrics=tuple(src["extra_metrics"]), baselines=baselines)
    out = Path(out)
    return out / f"{src['table']}.csv", out / f"{src['table']}.md"


def csv_difference(committed: Path, fresh: Path) -> str | None:
    """Where two table CSVs differ (columns, rows, or a value beyond :data:`RTOL`); None when equal."""
    a, b = pd.read_csv(committed), pd.read_csv(fresh)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return f"columns or rows differ ({len(a)} x {list(a.columns)} against {len(b)} x {list(b.columns)})"
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            bad = ~np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=RTOL, atol=0.0, equal_nan=True)
        else:
            bad = (x.astype(str) != y.astype(str)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"line {i + 2}, column {col}: the file has {x.iloc[i]!r}, the rows give {y.iloc[i]!r}"
    return None


def published_tables(reference: str | Path) -> list[Path]:
    """The ``<table>.sources.json`` files at the top of ``reference``, sorted."""
    return sorted(Path(reference).glob(f"*{SOURCES_SUFFIX}"))


def check_tables(reference: str | Path, first_difference) -> tuple[int, tuple[str, str] | None]:
    """Re-derive every published table of ``reference`` and compare it with the committed files.

    Args:
        reference: the reference folder.
        first_difference: ``(committed text, fresh text) -> (line, description) | None`` for markdown.

    Returns:
        ``(tables checked, None)``, or ``(n, (file name, what differs))`` at the first difference.
    """
    reference = Path(reference)
    tables = published_tables(reference)
    with tempfile.TemporaryDirectory(prefix="dap-rederive-") as tmp:
        for sources in tables:
            csv, md = rederive_table(reference, sources, tmp)
            for fresh in (csv, md):
                committed = reference / fresh.name
                if not committed.is_file():
                    return len(tables), (fresh.name, "missing, though its sources are published")
                if fresh.suffix == ".csv":
                    why = csv_difference(committed, fresh)
                else:
                    diff = first_difference(committed.read_text(encoding="utf-8"), fresh.read_text(encoding="utf-8"))
                    why = None if diff is None else f"line {diff[0]}: {diff[1]}"
                if why:
                    return len(tables), (fresh.name, why)
    return len(tables), None
