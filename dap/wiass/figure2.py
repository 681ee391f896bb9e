"""Paper 2's Figure 2 (notebook 07): its caption, published tables and named numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dap.metrics import DEFINITIONS
from dap.report.tables import caption, commits_note, write_table
from dap.wiass.captions import describe, deviations, model_summary
from dap.wiass.evaluate import ALIGNMENT_METRICS, SEPARATION_METRICS
from dap.wiass.references import l1_loss, silence_loss
from dap.wiass.study_data import StudyData
from dap.wiass.tables import (EVALUATED, comparison_table, markdown_comparisons, markdown_summary,
                              summary_table)
from dap.wiass.train_settings import TrainResult

#: Notebook 07's name: its results folder, where notebook 08 looks for trained models.
FIGURE2 = "07_wiass_figure2_side_information"


def figure2_caption(p: dict, data: StudyData, results: dict[str, TrainResult],
                    rows: pd.DataFrame | None = None) -> str:
    """Figure 2's caption; with the study's ``rows`` it also names the commits that produced them
    (a warning when rows of several commits are mixed)."""
    steps = sorted({r.steps for r in results.values()})
    return caption("Figure 2 (paper 2): separation with side information of decreasing strength",
                   data=describe(p, data), profile=p.profile, n_clips=len(data.splits["test"]),
                   iterations=f"training steps {', '.join(map(str, steps))}",
                   selection="model with the best validation L1 loss",
                   metrics={k: v for k, v in DEFINITIONS.items() if k in ("SDR", "PES", "EPS")},
                   deviations=deviations(p, data.source),
                   extra=[model_summary(p, results, data),
                          commits_note(rows) if rows is not None else ""])


def publish_figure2(table: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure2_medians.csv`` and ``figure2_medians.md``; return the markdown."""
    md = markdown_summary(table, caption_text)
    write_table(table, folder, "figure2_medians", md)
    return md


def publish_comparisons(rows: pd.DataFrame, folder: str | Path, configurations=EVALUATED) -> str:
    """Write ``figure2_comparisons.csv`` / ``.md``
    (:func:`dap.wiass.tables.comparison_table`); return the markdown."""
    table = comparison_table(rows, configurations)
    md = markdown_comparisons(table)
    write_table(table, folder, "figure2_comparisons", md)
    return md


#: Medians shown per test set in the side-by-side table.
SIDE_BY_SIDE = ("SDR", "PES", "EPS")


def side_by_side_table(rows: pd.DataFrame, embedded_rows: pd.DataFrame,
                       configurations=EVALUATED) -> pd.DataFrame:
    """One row per configuration and reference: SDR / PES / EPS medians and fragment counts on the
    generated test split (``rows``) beside the same on the embedded test stems (``embedded_rows``)."""
    parts = []
    for name, r in (("generated", rows), ("embedded", embedded_rows)):
        t = summary_table(r, configurations).set_index(["configuration", "kind"])
        cols = [f"{m}_median" for m in SIDE_BY_SIDE] + ["n_fragments"]
        parts.append(t[cols].rename(columns={c: f"{c} ({name})" for c in cols}))
    return pd.concat(parts, axis=1, sort=False).reset_index()  # (the summary's row order)


def publish_side_by_side(rows: pd.DataFrame, embedded_rows, folder: str | Path,
                         configurations=EVALUATED) -> str:
    """Write ``figure2_side_by_side.csv`` / ``.md`` and return the markdown; "" when the study has
    no embedded rows (it ran on the embedded stems themselves)."""
    if embedded_rows is None:
        return ""
    table = side_by_side_table(rows, embedded_rows, configurations)
    md = ("**Generated corpus vs embedded (real) stems**: medians over the test fragments of each "
          "set, same models. The embedded test stems are gated to have two silent runs each; the "
          "generated ones keep their own silences (docs/wiass.md).\n\n"
          + table.to_markdown(index=False, floatfmt=".2f"))
    write_table(table, folder, "figure2_side_by_side", md)
    return md


def figure2_checks(table: pd.DataFrame, results: dict[str, TrainResult] | None = None,
                    data: StudyData | None = None) -> dict:
    """Named numbers for ``checks.json``: medians per configuration, alignment of M2 / A3.1,
    and (given ``results`` / ``data``) best validation losses and the loss of predicting silence."""
    out = {"n_configurations": int((table["kind"] == "model").sum()),
           "n_references": int((table["kind"] == "reference").sum())}
    for c, r in (results or {}).items():
        out[f"{c}_best_val_loss"] = float(r.best_val)
        out[f"{c}_steps"] = int(r.steps)
    if data is not None:
        out["silence_val_loss"] = silence_loss(data.valid_set)
        out["constant_mask_val_loss"] = l1_loss("constant-mask", data.valid_set, data.constant_mask)
    for r in table.to_dict("records"):
        c = r["configuration"]
        for m in SEPARATION_METRICS:
            out[f"{c}_{m}_median"] = r[f"{m}_median"]
        out[f"{c}_n_fragments"] = r["n_fragments"]
        out[f"{c}_n_pes_frames"] = r["n_pes_frames"]
        for m in ALIGNMENT_METRICS:
            if not np.isnan(r[m]):
                out[f"{c}_{m}"] = r[m]
                if not np.isnan(r[f"chance_{m}"]):
                    out[f"{c}_chance_{m}"] = r[f"chance_{m}"]
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}
