"""Tables and figures: reproduced numbers next to the paper's, with a caption that says what
produced them.

Tables are aggregations of the tidy rows of :mod:`dap.core.store` (mean +- std like the paper, and
the median), written as CSV and markdown under ``results/<notebook>/``. ``results/SUMMARY.md``
gathers every table and the run log.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from dap.report import paper
from dap.priors import DESIGN_LABELS
from dap.core.files import atomic_write_bytes, atomic_write_text
from dap.core.provenance import git_commit, machine_description
from dap.engine.fit import SELECTION_NOTES
from dap.claims.rule import VERDICTS, best_design_verdicts, best_of

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
    """Per (dataset, metric): the best design in the paper, ours, and whether they agree. A tie for
    the best (:func:`dap.claims.best_of`) names no design: a tied paper column makes no claim
    (``agree`` is NA and the column is not counted), a tie here does not agree."""
    out = []
    for (dataset, metric), g in comparison.groupby(["dataset", "metric"], sort=False):
        lower = metric in paper.LOWER_IS_BETTER
        best_paper = best_of(g.set_index("design")["paper_mean"], lower)
        best_ours = best_of(g.set_index("design")["mean"], lower)
        out.append({"dataset": dataset, "metric": metric, "best_in_paper": best_paper,
                    "best_here": best_ours, "agree": pd.NA if best_paper is None else best_paper == best_ours})
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
    lines.extend(f"- {e}" for e in extra or [] if e)
    return "\n".join(lines)


def commits_note(rows: pd.DataFrame) -> str:
    """Which commits produced ``rows``: ``rows from commit abc`` for one; for several, a warning that
    names each with its number of fits, so a table never mixes code versions silently (a results
    folder kept across commits resumes old fits). ``""`` without a ``git_commit`` column."""
    if not len(rows) or "git_commit" not in rows:
        return ""
    fits = rows.drop_duplicates("fit_id") if "fit_id" in rows else rows
    counts = fits["git_commit"].fillna("unknown").astype(str).value_counts()
    if len(counts) == 1:
        return f"rows from commit {counts.index[0]}"
    listed = ", ".join(f"{c} ({n} fits)" for c, n in counts.items())
    return (f"**WARNING: rows from {len(counts)} commits mixed: {listed}**; move the results folder away and "
            f"rerun for rows of one commit")


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


def ours_only_table(rows: pd.DataFrame, metrics: tuple[str, ...], selection: str) -> str:
    """Markdown of metrics the paper does not print (mean ± std, n), designs x (dataset, metric)."""
    agg = aggregate(rows[(rows["selection"] == selection) & rows["metric"].isin(metrics)])
    if agg.empty:
        return ""
    cols = list(dict.fromkeys(zip(agg["dataset"], agg["metric"])))
    header = ["Design"] + [f"{DATASET_LABELS.get(d, d)} {m}" for d, m in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = {d: i for i, d in enumerate(DESIGN_LABELS)}  # the paper's row order, as in the main table
    for design, g in sorted(agg.groupby("design", sort=False), key=lambda kv: order.get(kv[0], len(order))):
        cells = [DESIGN_LABELS.get(design, design)]
        for d, m in cols:
            hit = g[(g.dataset == d) & (g.metric == m)]
            cells.append(f"{_fmt(hit['mean'].iloc[0], hit['std'].iloc[0])} (n={int(hit['n'].iloc[0])})" if len(hit) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def publish_table(rows: pd.DataFrame, table: str, folder: str | Path, caption_text: str,
                  selections=("oracle", "last", "ema", "discrepancy"),
                  extra_metrics: tuple[str, ...] = (), baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write ``<table>.csv`` (every selection rule, paper cells side by side) and ``<table>.md``
    (one markdown table per rule, oracle first, then the ranking check, then ``extra_metrics``
    that the paper does not print). A rule without rows (e.g. ``discrepancy`` for a task with no
    noise floor) is left out. ``baselines``: rows of the classical baselines (``selection = "none"``,
    :mod:`dap.baselines`), shown as extra rows after the rules (mean ± std, n) and appended to the
    CSV; they never enter the ranking. Returns the comparison (and the baselines' statistics)."""
    rows = canonical_order(rows, table, selections, extra_metrics)
    baselines = canonical_order(baselines, table, selections, extra_metrics) if baselines is not None else None
    parts, frames = [caption_text, ""], []
    for rule in rules_with_rows(rows, selections):
        cmp = compare_with_paper(rows, table, rule)
        frames.append(cmp)
        parts.append(markdown_table(cmp, f"*Selection: {SELECTION_NOTES.get(rule, rule)}*"))
        if extra_metrics:
            parts.append(f"Not in the paper, same fits and rule ({', '.join(extra_metrics)}):\n\n"
                         + ours_only_table(rows, extra_metrics, rule))
        parts.append(best_design_sentence(rows, cmp, rule))
    if baselines is not None and len(baselines):
        metrics = tuple(dict.fromkeys(paper.table(table)["metric"])) + tuple(extra_metrics)
        parts.append("Classical baselines on the same clips and metrics, with the trivial answer where the task has "
                     "one (`noisy-input`, `gapped-input`: the observation itself). References: not ranked against the "
                     "designs; no selection rule, `none`; what each is and costs: caption.\n\n"
                     + ours_only_table(baselines, metrics, "none"))
        frames.append(aggregate(baselines[baselines["metric"].isin(metrics)]))
    both = pd.concat(frames, ignore_index=True)
    write_table(both, folder, table, "\n".join(parts))
    write_sources(folder, table, rows, caption_text, selections, extra_metrics, baselines)
    return both


#: ``<table>.sources.json``: what :func:`publish_table` made ``<table>.csv`` / ``.md`` from, so that
#: ``python -m dap report --check`` can make them again from a reference's rows (dap.report.rederive).
SOURCES_SUFFIX = ".sources.json"


def write_sources(folder: str | Path, table: str, rows: pd.DataFrame, caption_text: str, selections,
                  extra_metrics, baselines: pd.DataFrame | None) -> Path | None:
    """Write ``<table>.sources.json``: the arguments of :func:`publish_table` and the fit ids of its
    rows and baselines (the rows themselves are the store's). None (nothing written) when the rows
    carry no fit ids: such a table cannot be made again from stored rows."""
    if "fit_id" not in rows:
        return None
    ids = lambda frame: sorted(set(frame["fit_id"].astype(str))) if frame is not None and "fit_id" in frame else None
    sources = {"table": table, "selections": list(selections), "extra_metrics": list(extra_metrics),
               "caption": caption_text, "fit_ids": ids(rows),
               "baseline_fit_ids": ids(baselines) if baselines is not None and len(baselines) else None}
    return atomic_write_text(Path(folder) / f"{table}{SOURCES_SUFFIX}", json.dumps(sources, indent=1) + "\n")


def canonical_order(rows: pd.DataFrame, table: str, selections=(), extra_metrics=()) -> pd.DataFrame:
    """``rows`` in one order whatever order they came in, so that a table made from the same rows in
    another order (a reference's stored rows: dap.report.rederive) is the same to the last digit: data
    sets and metrics in the paper table's order (then ``extra_metrics``), designs in the paper's order,
    rules in ``selections``' order, the rest by name; then clip and fit id."""
    if rows.empty or not {"design", "dataset", "metric", "selection"} <= set(rows.columns):
        return rows
    ref = paper.table(table)
    orders = {"dataset": list(dict.fromkeys(ref["dataset"])), "metric": list(dict.fromkeys(ref["metric"])) + list(extra_metrics),
              "design": list(DESIGN_LABELS), "selection": list(selections)}

    def rank(column: str) -> pd.Series:
        known = {v: i for i, v in enumerate(dict.fromkeys(orders[column]))}
        values = rows[column].astype(str)
        others = {v: len(known) + i for i, v in enumerate(sorted(set(values) - set(known)))}
        return values.map(lambda v: known.get(v, others.get(v)))

    keys = {f"_rank_{c}": rank(c) for c in ("dataset", "metric", "design", "selection")}
    tail = [c for c in ("clip_id", "fit_id") if c in rows]
    ranked = rows.assign(**keys, **{f"_key_{c}": rows[c].astype(str) for c in tail})
    by = ["_rank_dataset", "_rank_design", "_rank_metric", "_rank_selection"] + [f"_key_{c}" for c in tail]
    return ranked.sort_values(by, kind="stable").drop(columns=[*keys, *(f"_key_{c}" for c in tail)]).reset_index(drop=True)


def best_design_sentence(rows: pd.DataFrame, comparison: pd.DataFrame, rule: str) -> str:
    """Whether the paper's best design of each column is best here: by the mean over clips, and by
    the exact paired rule of docs/claims.md (the paper's best against each other design of the
    paper's table on the same clips, corrected over the table). Columns where the paper prints a tie
    for the best make no claim. Only the paper's designs compete; classical baselines never enter."""
    rank = ranking_holds(comparison)
    claimed = rank[rank["best_in_paper"].notna()]
    held = int(claimed["agree"].astype(bool).sum())
    best = {(r.dataset, r.metric): r.best_in_paper for r in claimed.itertuples()}
    paired = best_design_verdicts(rows, best, list(dict.fromkeys(comparison["design"])), rule, paper.LOWER_IS_BETTER)
    counts = ", ".join(f"{v} in {int((paired['verdict'] == v).sum())}" for v in VERDICTS if (paired["verdict"] == v).any())
    n = sorted(set(paired["n"]))
    ties = len(rank) - len(claimed)
    here = ", ".join(f"{r.dataset} {r.metric}: {DESIGN_LABELS.get(r.best_here, r.best_here) if r.best_here else 'tie'}"
                     for r in claimed.itertuples())
    return (f"Best design as in the paper by the mean in {held} of {len(claimed)} columns ({here})"
            + (f"; {ties} column(s) where the paper prints a tie for the best make no claim" if ties else "")
            + f"; by the exact paired rule of docs/claims.md (the paper's best against every other design, per-clip "
            f"differences, signed-rank test corrected over the table): {counts} of {len(paired)} columns (paired clips "
            f"per column: {', '.join(map(str, n))}).\n")


def rules_with_rows(rows: pd.DataFrame, selections) -> list[str]:
    """The rules of ``selections`` (in that order) that have at least one row in ``rows``; all of
    them when ``rows`` is empty (an empty table still shows its layout)."""
    if rows.empty or "selection" not in rows:
        return list(selections)
    present = set(rows["selection"].dropna())
    return [r for r in selections if r in present]


def discrepancy_note(rows: pd.DataFrame) -> str:
    """One caption line on the discrepancy rule of ``rows``: tolerance, how often the floor was
    reached within the fits, the iterations it used and the noise estimate's error against the
    true floor (an evaluation only; the rule never sees it). Empty without such fits."""
    if rows.empty or "noise_floor" not in rows:
        return ""
    fits = rows[(rows["status"] == "ok") & rows["noise_floor"].notna()].drop_duplicates("fit_id")
    if fits.empty:
        return ""
    d = rows[(rows["selection"] == "discrepancy") & (rows["status"] == "ok")].drop_duplicates("fit_id")
    reached = fits["discrepancy_reached"].astype(str).str.lower().eq("true")
    text = (f"discrepancy rule: stop at the first iterate whose loss <= {fits['discrepancy_tolerance'].iloc[0]:g} x "
            f"the noise floor estimated blindly from the noisy input ({', '.join(sorted(set(fits['noise_estimator'].astype(str))))} "
            f"estimator); floor reached in {int(reached.sum())} of {len(fits)} fits (otherwise: the final iterate)")
    if len(d) and "best_iteration" in d:
        it = pd.to_numeric(d["best_iteration"], errors="coerce")
        text += f"; iterations used: median {it.median():.0f} (range {it.min():.0f}-{it.max():.0f})"
    if "noise_floor_error_db" in fits:
        err = pd.to_numeric(fits["noise_floor_error_db"], errors="coerce").dropna()
        if len(err):
            text += f"; noise-floor estimate vs truth: {err.mean():+.2f} dB mean, {err.abs().max():.2f} dB worst"
    return text


def selection_plot(rows: pd.DataFrame, metric: str, baselines: pd.DataFrame | None = None):
    """Mean ``metric`` per design under each selection rule, one panel per data set: how much of a
    result comes from the oracle rule. ``baselines``: rows of the classical baselines, drawn as
    horizontal lines at their mean (:func:`mark_levels`)."""
    import matplotlib.pyplot as plt

    ok = rows[(rows["metric"] == metric) & (rows["status"] == "ok")]
    datasets = list(dict.fromkeys(ok["dataset"]))
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(4.2 * max(1, len(datasets)), 3.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        table = ok[ok["dataset"] == dataset].pivot_table(index="design", columns="selection", values="value",
                                                         aggfunc="mean", sort=False)
        table.index = [DESIGN_LABELS.get(d, d).replace(" + ", "\n+ ") for d in table.index]
        table.plot.bar(ax=ax, rot=0, fontsize=7)
        ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)}: {metric}", fontsize=9)
        ax.set_ylabel(metric)
        if baselines is not None and len(baselines):
            mark_levels(ax, baseline_levels(baselines, metric, dataset=dataset))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def baseline_levels(baselines: pd.DataFrame, metric: str, dataset: str | None = None, clip_id: str | None = None,
                    how: str = "mean") -> dict[str, float]:
    """Per classical baseline: ``how`` (``"mean"``, ``"min"``, ...) of its successful ``metric`` values,
    optionally on one ``dataset`` / ``clip_id`` (e.g. the worse of two sources of one mixture: ``"min"``)."""
    ok = baselines[(baselines["metric"] == metric) & (baselines["status"] == "ok")]
    if dataset is not None:
        ok = ok[ok["dataset"] == dataset]
    if clip_id is not None:
        ok = ok[ok["clip_id"] == clip_id]
    values = pd.to_numeric(ok["value"], errors="coerce")
    return {k: float(v) for k, v in values.groupby(ok["design"], sort=False).agg(how).items() if np.isfinite(v)}


def mark_levels(ax, levels: dict[str, float]):
    """Dashed horizontal lines at the classical baselines' ``levels`` (name -> value), labelled."""
    for k, (name, value) in enumerate(levels.items()):
        ax.axhline(value, ls="--", lw=1.0, color=f"C{(k + 6) % 10}", label=f"{name} (baseline)")
    if levels:
        ax.legend(fontsize=7)
    return ax


def mark_discrepancy(ax, points: dict[str, tuple[int, float, bool]]):
    """Mark each design's discrepancy-rule output ``(iteration, SNR, reached)`` on an SNR-vs-iteration
    plot (filled: the loss reached the estimated noise floor; open: the budget ended first)."""
    for k, (design, (it, snr, reached)) in enumerate(points.items()):
        ax.plot([it], [snr], marker="v", ms=8, color=f"C{k}", mfc=f"C{k}" if reached else "none", ls="none",
                label="discrepancy rule (open: floor not reached)" if k == 0 else None)
    if points:
        ax.legend(fontsize=7)
    return ax


def convergence_plot(histories: dict[str, pd.DataFrame], metric: str = "snr", ax=None, band: dict | None = None):
    """``metric`` against iteration, one curve per design (Figures 1-2). ``band`` optionally maps a
    design to (low, high) arrays drawn as a shaded spread over clips."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    for design, h in histories.items():
        line, = ax.plot(h["iteration"], h[metric], label=DESIGN_LABELS.get(design, design), lw=1.4)
        if band and design in band:
            lo, hi = band[design]
            ax.fill_between(h["iteration"], lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{metric.upper()} (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure
