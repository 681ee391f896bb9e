"""``python -m dap compare RUN_DIR [REFERENCE_DIR]``: a re-run's rows against the reference's, per
claim and per table cell.

* **Claims**: every registered claim decided on each folder's rows
  (:func:`dap.claims.table.evaluate_claims`): the verdict in both, same or flipped, and the difference
  of the effect (the Hodges-Lehmann estimate of CLAIMS.md). A claim with rows on one side only is
  listed as "only in run" / "only in reference"; one with rows on neither side is left out.
* **Table cells**: per (notebook, profile, source, dataset, design, selection, metric), the mean over
  clips of ``value`` of the rows with status ``ok`` and a finite value
  (:func:`dap.report.tables.aggregate`), the difference run - reference, and whether it lies within
  the metric's tolerance (:mod:`dap.claims.tolerances`). Profile and source belong to the key so that rows of
  different runs kept in one folder are never averaged together.

Rows of the same precision class and code should be identical: a difference of exactly 0 (and the
same number of clips) is reported as "identical". Either folder may have a run's layout
(``<notebook>/rows.csv``) or a reference's (``rows/<notebook>/rows.csv.gz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dap.claims.rule import NOT_RUN
from dap.claims.table import evaluate_claims, load_rows, notebooks_with_rows
from dap.claims.tolerances import is_measured, tolerance, tolerance_note
from dap.core.errors import DapError
from dap.report.tables import aggregate

#: The committed reference a re-run is compared with by default.
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"

#: A table cell: the mean over clips of one such group of rows.
CELL_KEY = ["notebook", "profile", "source", "dataset", "design", "selection", "metric"]

IDENTICAL, WITHIN, OUTSIDE = "identical", "within", "outside"
SAME, FLIPPED = "same verdict", "flipped"
ONLY_RUN, ONLY_REFERENCE = "only in run", "only in reference"


class CompareError(DapError, ValueError):
    """A folder to compare is missing or holds no result rows."""


def checked_folder(path: str | Path, role: str) -> Path:
    """``path`` as a folder of result rows, or :class:`CompareError` naming it.

    Args:
        path: the folder.
        role: ``"run"`` or ``"reference"``, for the message.

    Returns:
        ``Path(path)``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CompareError(f"{role} folder {folder} does not exist or is not a folder")
    if not notebooks_with_rows(folder):
        raise CompareError(f"{role} folder {folder} holds no result rows (neither <notebook>/rows.csv "
                           f"nor rows/<notebook>/rows.csv.gz)")
    return folder


def table_cells(results_dir: str | Path, profile: str | None = None) -> pd.DataFrame:
    """Every table cell of a folder: the mean over clips of ``value`` per :data:`CELL_KEY`, from the
    rows with status ``ok`` and a finite value.

    Args:
        results_dir: a run's or a reference's folder.
        profile: only the rows of this profile (None: every profile, each its own cells).

    Returns:
        Columns :data:`CELL_KEY` + ``n`` (clips averaged) + ``mean`` (NaN when no value is finite).
    """
    frames = []
    for notebook in notebooks_with_rows(results_dir):
        rows = load_rows(results_dir, notebook)
        if rows.empty or "status" not in rows:
            continue
        rows = rows[rows["status"] == "ok"].copy()
        for col in CELL_KEY[1:]:  # a missing or empty key (a baseline's selection) is a value, not a dropped row
            rows[col] = rows[col].fillna("").astype(str) if col in rows else ""
        if profile is not None:
            rows = rows[rows["profile"] == profile]
        if rows.empty:
            continue
        # the same values summed in the same order whatever order the fits finished in: identical rows
        # give bit-identical means
        rows = rows.sort_values(["clip_id", "fit_id"], kind="stable", key=lambda col: col.astype(str))
        cells = aggregate(rows, by=CELL_KEY[1:])
        cells.insert(0, "notebook", notebook)
        frames.append(cells[CELL_KEY + ["n", "mean"]])
    if not frames:
        return pd.DataFrame(columns=CELL_KEY + ["n", "mean"])
    return pd.concat(frames, ignore_index=True)


def compare_cells(run: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The cells of two folders (:func:`table_cells`) side by side.

    Args:
        run: the re-run's cells.
        reference: the reference's cells.

    Returns:
        One row per cell of either: :data:`CELL_KEY`, ``n_run``, ``n_reference``, ``run``,
        ``reference``, ``difference`` (run - reference), ``tolerance`` and ``status``
        (identical | within | outside | only in run | only in reference).
    """
    both = run.merge(reference, on=CELL_KEY, how="outer", suffixes=("_run", "_reference"), indicator=True)
    both = both.rename(columns={"mean_run": "run", "mean_reference": "reference"})
    for col in ("run", "reference"):
        both[col] = pd.to_numeric(both[col], errors="coerce")
    both["difference"] = both["run"] - both["reference"]
    both["tolerance"] = both["metric"].map(tolerance)
    same_value = (both["run"] == both["reference"]) | (both["run"].isna() & both["reference"].isna())
    status = np.where(same_value & (both["n_run"] == both["n_reference"]), IDENTICAL,
                      np.where(both["difference"].abs() <= both["tolerance"], WITHIN, OUTSIDE))
    status = np.where(both["_merge"] == "left_only", ONLY_RUN, np.where(both["_merge"] == "right_only",
                                                                         ONLY_REFERENCE, status))
    both["status"] = status
    return both.drop(columns="_merge")


_CLAIM_COLUMNS = ["id", "family", "metric", "verdict", "n", "estimate", "p_holm"]


def compare_claims(run: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The claims of two folders (:func:`dap.claims.table.evaluate_claims`) side by side.

    Args:
        run: the re-run's claims.
        reference: the reference's claims.

    Returns:
        One row per claim with rows on at least one side: ``id``, ``family``, ``metric``,
        ``verdict_run`` / ``_reference``, ``n_run`` / ``_reference``, ``effect_run`` / ``_reference``
        (Hodges-Lehmann estimates), ``effect_difference`` (run - reference) and ``status``
        (identical | same verdict | flipped | only in run | only in reference).
    """
    both = run[_CLAIM_COLUMNS].merge(reference[_CLAIM_COLUMNS], on="id", how="outer", suffixes=("_run", "_reference"))
    for col in ("family", "metric"):
        both[col] = both[f"{col}_run"].fillna(both[f"{col}_reference"])
    both = both.rename(columns={"estimate_run": "effect_run", "estimate_reference": "effect_reference"})
    ran_run = both["verdict_run"].notna() & (both["verdict_run"] != NOT_RUN)
    ran_ref = both["verdict_reference"].notna() & (both["verdict_reference"] != NOT_RUN)
    both = both[ran_run | ran_ref].copy()
    ran_run, ran_ref = ran_run[both.index], ran_ref[both.index]
    both["effect_difference"] = both["effect_run"] - both["effect_reference"]

    def equal(col):
        a, b = both[f"{col}_run"], both[f"{col}_reference"]
        return (a == b) | (a.isna() & b.isna())

    identical = equal("n") & equal("effect") & equal("p_holm")
    status = np.where(both["verdict_run"] != both["verdict_reference"], FLIPPED,
                      np.where(identical, IDENTICAL, SAME))
    both["status"] = np.where(~ran_ref, ONLY_RUN, np.where(~ran_run, ONLY_REFERENCE, status))
    return both[["id", "family", "metric", "verdict_run", "verdict_reference", "n_run", "n_reference",
                 "effect_run", "effect_reference", "effect_difference", "status"]].reset_index(drop=True)


@dataclass
class Comparison:
    """What :func:`compare` found: the claims and cells side by side, and which folders."""

    run_dir: Path
    reference_dir: Path
    profile: str | None
    claims: pd.DataFrame  #: :func:`compare_claims`
    cells: pd.DataFrame   #: :func:`compare_cells`

    def count(self, table: str, status: str) -> int:
        """How many claims or cells have a status.

        Args:
            table: ``"claims"`` or ``"cells"``.
            status: e.g. :data:`FLIPPED`, :data:`OUTSIDE`.

        Returns:
            The count.
        """
        return int((getattr(self, table)["status"] == status).sum())

    def exit_status(self, strict: bool = False) -> int:
        """The command's exit status.

        Args:
            strict: a cell outside its tolerance counts as a failure too.

        Returns:
            1 when a verdict flipped (or, with ``strict``, a cell lies outside its tolerance), else 0.
        """
        return int(self.count("claims", FLIPPED) > 0 or (strict and self.count("cells", OUTSIDE) > 0))

    def summary(self) -> str:
        """The one-line summary the command ends with.

        Returns:
            ``compare: N claims, F verdicts flipped (...); M cells, W within tolerance (...), O outside ...``.
        """
        c, t = self.claims, self.cells
        compared = int(c["status"].isin([IDENTICAL, SAME, FLIPPED]).sum())
        cells = int(t["status"].isin([IDENTICAL, WITHIN, OUTSIDE]).sum())
        within = self.count("cells", IDENTICAL) + self.count("cells", WITHIN)
        outside = self.count("cells", OUTSIDE)
        text = (f"compare: {compared} claims, {self.count('claims', FLIPPED)} verdicts flipped "
                f"({self.count('claims', IDENTICAL)} identical); {cells} cells, {within} within tolerance "
                f"({self.count('cells', IDENTICAL)} identical), {outside} outside")
        if outside:
            out = t[t["status"] == OUTSIDE]
            worst = out.loc[out["difference"].abs().fillna(np.inf).idxmax()]
            size = ("defined on one side only" if pd.isna(worst["difference"])
                    else f"{_number(worst['difference'], '+')}, tolerance {worst['tolerance']:g}")
            text += f" (largest: {_cell_name(worst)} {size})"
        for side in (ONLY_RUN, ONLY_REFERENCE):
            k, n = self.count("claims", side), self.count("cells", side)
            if k or n:
                text += f"; {side}: {k} claims, {n} cells"
        return text


def compare(run_dir: str | Path, reference_dir: str | Path = REFERENCE_DIR, profile: str | None = None) -> Comparison:
    """Compare the rows of a re-run with those of the reference, per claim and per table cell.

    Args:
        run_dir: the re-run's results folder.
        reference_dir: the reference folder (default: the committed ``results/reference``).
        profile: only this profile's rows (None: per claim the largest profile with rows, as
            ``python -m dap claims``; every profile's cells).

    Returns:
        A :class:`Comparison`. Raises :class:`CompareError` when a folder is missing or has no rows.
    """
    run_dir, reference_dir = checked_folder(run_dir, "run"), checked_folder(reference_dir, "reference")
    claims = compare_claims(evaluate_claims(run_dir, profile=profile), evaluate_claims(reference_dir, profile=profile))
    cells = compare_cells(table_cells(run_dir, profile), table_cells(reference_dir, profile))
    return Comparison(run_dir, reference_dir, profile, claims, cells)


def _number(value, sign: str = "") -> str:
    if pd.isna(value):
        return "—"
    return "0" if value == 0 else f"{value:{sign}.4g}"


def _cell_name(r) -> str:
    return f"{r['notebook']} {r['dataset']}/{r['design']}/{r['selection'] or '-'}/{r['metric']}"


_CLAIM_ORDER = [FLIPPED, ONLY_RUN, ONLY_REFERENCE, SAME, IDENTICAL]
_CELL_ORDER = [OUTSIDE, ONLY_RUN, ONLY_REFERENCE, WITHIN, IDENTICAL]


def _ordered(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Worst first; within a status, the table's own order."""
    return table.assign(_o=table["status"].map(order.index)).sort_values("_o", kind="stable").drop(columns="_o")


def comparison_markdown(result: Comparison) -> str:
    """The comparison as markdown: the claims, then the cells (worst first), then the summary.

    Args:
        result: what :func:`compare` returned.

    Returns:
        The text, ending with a newline.
    """
    lines = ["# A re-run compared with the reference", "",
             f"Run: `{result.run_dir}`; reference: `{result.reference_dir}`; profile: "
             f"{result.profile or 'per claim the largest with rows; every profile for cells'}.", "",
             f"Cells: mean over clips of `value` (rows with status ok and a finite value); tolerance per metric "
             f"({tolerance_note()}; a guessed one is marked *guess* below). Effects: Hodges-Lehmann estimates "
             "of CLAIMS.md.", "",
             "## Claims", "",
             "| id | metric | verdict (run) | verdict (reference) | n (run / ref) | effect (run) | effect (reference) "
             "| difference | status |", "|---|---|---|---|---|---|---|---|---|"]
    for r in _ordered(result.claims, _CLAIM_ORDER).to_dict("records"):
        lines.append(f"| {r['id']} | {r['metric']} | {r['verdict_run']} | {r['verdict_reference']} | "
                     f"{_count(r['n_run'])} / {_count(r['n_reference'])} | {_number(r['effect_run'])} | "
                     f"{_number(r['effect_reference'])} | {_number(r['effect_difference'], '+')} | {r['status']} |")
    lines += ["", "## Table cells", "",
              "| notebook | profile | source | dataset | design | selection | metric | n (run / ref) | run | "
              "reference | difference | tolerance | status |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in _ordered(result.cells, _CELL_ORDER).to_dict("records"):
        lines.append(f"| {r['notebook']} | {r['profile']} | {r['source']} | {r['dataset']} | {r['design']} | "
                     f"{r['selection']} | {r['metric']} | {_count(r['n_run'])} / {_count(r['n_reference'])} | "
                     f"{_number(r['run'])} | {_number(r['reference'])} | {_number(r['difference'], '+')} | "
                     f"{r['tolerance']:g}{'' if is_measured(r['metric']) else ' *guess*'} | {r['status']} |")
    return "\n".join(lines + ["", result.summary()]) + "\n"


def _count(value) -> str:
    return "—" if pd.isna(value) else str(int(value))
