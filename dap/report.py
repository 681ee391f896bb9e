"""Tables and figures: reproduced numbers next to the paper's, with a caption that says what
produced them.

Tables are aggregations of the tidy rows of :mod:`dap.results` (mean +- std like the paper, and
the median), written as CSV and markdown under ``results/<notebook>/``. ``results/SUMMARY.md``
gathers every table and the run log.
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from dap import paper
from dap.results import atomic_write_bytes, atomic_write_text, git_commit, machine_description

#: Row labels of the paper's tables.
DESIGN_LABELS = {
    "conv": "Convolution",
    "dilated": "Dilated Conv.",
    "dilated_exp": "Dilated Conv. (exp)",
    "dilated_exp_dense": "Dilated Conv. (exp) + Dense",
    "harmonic": "Harmonic Conv.",
}
DATASET_LABELS = {"speech": "LJSpeech-like", "digits": "Digits", "piano": "Piano", "drums": "Drums"}


def aggregate(rows: pd.DataFrame, by=("design", "dataset", "metric", "selection")) -> pd.DataFrame:
    """Mean, std (ddof=1 as is usual for a sample), median and count of ``value`` per group.

    Failed fits (status != "ok") and non-finite values are left out of the statistics and counted
    in ``n_failed`` / ``n_nan`` so a table never hides them.
    """
    by = list(by)
    if rows.empty:
        return pd.DataFrame(columns=by + ["n", "mean", "std", "median", "n_failed", "n_nan"])
    rows = rows.copy()
    ok = rows["status"].fillna("ok") == "ok"
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    finite = ok & np.isfinite(rows["value"])

    def stats(g: pd.DataFrame) -> pd.Series:
        v = g.loc[finite.loc[g.index], "value"]
        return pd.Series({
            "n": int(v.size),
            "mean": v.mean() if v.size else math.nan,
            "std": v.std(ddof=1) if v.size > 1 else math.nan,
            "median": v.median() if v.size else math.nan,
            "n_failed": int((~ok.loc[g.index]).sum()),
            "n_nan": int((ok.loc[g.index] & ~finite.loc[g.index]).sum()),
        })

    return rows.groupby(by, sort=False)[rows.columns.tolist()].apply(stats).reset_index()


def compare_with_paper(rows: pd.DataFrame, table: str, selection: str) -> pd.DataFrame:
    """Reproduced statistics of ``selection`` next to the published cells of ``table``.

    Returns one row per published (design, dataset, metric) cell with columns
    ``n, mean, std, median, paper_mean, paper_std, diff`` (diff = ours - paper); a cell we did not
    compute keeps NaN in the reproduced columns.
    """
    ref = paper.table(table).rename(columns={"mean": "paper_mean", "std": "paper_std"})
    agg = aggregate(rows[rows["selection"] == selection]) if not rows.empty else aggregate(rows)
    agg = agg.drop(columns=["selection"], errors="ignore")
    out = ref.merge(agg, on=["design", "dataset", "metric"], how="left")
    out["diff"] = out["mean"] - out["paper_mean"]
    out.insert(3, "selection", selection)
    return out


def ranking_holds(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, metric): the best design in the paper, ours, and whether they agree."""
    out = []
    for (dataset, metric), g in comparison.groupby(["dataset", "metric"], sort=False):
        sign = -1 if metric in paper.LOWER_IS_BETTER else 1
        ours = g.dropna(subset=["mean"])
        best_paper = g.loc[(sign * g["paper_mean"]).idxmax(), "design"]
        best_ours = ours.loc[(sign * ours["mean"]).idxmax(), "design"] if len(ours) else None
        out.append({"dataset": dataset, "metric": metric, "best_in_paper": best_paper,
                    "best_here": best_ours, "agree": best_paper == best_ours})
    return pd.DataFrame(out)


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(comparison: pd.DataFrame, caption: str) -> str:
    """The paper's layout (designs x (dataset, metric)); each cell: ours, paper, difference."""
    cols = list(dict.fromkeys(zip(comparison["dataset"], comparison["metric"])))
    designs = list(dict.fromkeys(comparison["design"]))
    header = ["Design"] + [f"{DATASET_LABELS.get(d, d)} {m}" for d, m in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for design in designs:
        cells = [DESIGN_LABELS.get(design, design)]
        for d, m in cols:
            hit = comparison[(comparison.design == design) & (comparison.dataset == d) & (comparison.metric == m)]
            if hit.empty:
                cells.append("")
                continue
            r = hit.iloc[0]
            ours = _fmt(r["mean"], r["std"])
            n = "" if pd.isna(r.get("n")) else f" (n={int(r['n'])})"
            diff = "" if pd.isna(r["diff"]) else f"; Δ {r['diff']:+.2f}"
            cells.append(f"{ours}{n}<br>paper {_fmt(r['paper_mean'], r['paper_std'])}{diff}")
        lines.append("| " + " | ".join(cells) + " |")
    return f"{caption}\n\n" + "\n".join(lines) + "\n"


def caption(title: str, *, data: str, profile: str, n_clips: int | str, iterations: int | str,
            selection: str, metrics: dict[str, str] | None = None, deviations: list[str] | None = None,
            extra: list[str] | None = None) -> str:
    """A caption that says what produced a table or figure (the honesty contract of DESIGN.md)."""
    lines = [f"**{title}**", "",
             f"- Data: {data}; clips per data set: {n_clips}; iterations per fit: {iterations}",
             f"- Profile: `{profile}`; output selection: {selection}",
             f"- Machine: {machine_description()}; commit {git_commit()}; "
             f"generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"]
    for name, definition in (metrics or {}).items():
        lines.append(f"- {name}: {definition}")
    for d in deviations or []:
        lines.append(f"- Deviation from the paper: {d}")
    lines.extend(f"- {e}" for e in extra or [])
    return "\n".join(lines)


def write_table(df: pd.DataFrame, folder: str | Path, name: str, markdown: str) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.csv`` (the numbers) and ``<name>.md`` (caption + table) atomically."""
    folder = Path(folder)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    csv = atomic_write_text(folder / f"{name}.csv", buf.getvalue())
    md = atomic_write_text(folder / f"{name}.md", markdown)
    return csv, md


def save_figure(fig, folder: str | Path, name: str, formats=("png", "pdf")) -> list[Path]:
    """Save a matplotlib figure as PNG and PDF (atomically) and return the paths."""
    paths = []
    for ext in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        paths.append(atomic_write_bytes(Path(folder) / f"{name}.{ext}", buf.getvalue()))
    return paths


def write_summary(results_dir: str | Path, run_log: pd.DataFrame | None = None, header: str = "") -> Path:
    """Gather every ``results/<notebook>/*.md`` table into ``results/SUMMARY.md``."""
    results_dir = Path(results_dir)
    parts = ["# Reproduction summary", "", header.strip(), ""]
    if run_log is not None and not run_log.empty:
        parts += ["## Notebooks run", "", run_log.to_markdown(index=False), ""]
    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir() and p.name[:2].isdigit()):
        tables = sorted(folder.glob("*.md"))
        figures = sorted(folder.glob("*.png"))
        if not tables and not figures:
            continue
        parts += [f"## {folder.name}", ""]
        for t in tables:
            parts += [t.read_text().strip(), ""]
        for f in figures:
            parts += [f"![{f.stem}]({f.relative_to(results_dir).as_posix()})", ""]
    return atomic_write_text(results_dir / "SUMMARY.md", "\n".join(parts) + "\n")
