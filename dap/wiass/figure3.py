"""Paper 2's Figure 3 (notebook 08): attention examples, alignment table, caption, numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dap.report.tables import caption, write_table
from dap.wiass.captions import describe, deviations, model_summary
from dap.wiass.data import N_FRAMES
from dap.wiass.evaluate import ALIGNMENT_METRICS
from dap.wiass.figure2 import FIGURE2
from dap.wiass.side_info import SideInfo
from dap.wiass.study_data import StudyData
from dap.wiass.tables import alignment_means, fmt
from dap.wiass.train_settings import TrainResult

#: Notebook 08's name: its results folder.
FIGURE3 = "08_wiass_figure3_attention"
#: Label suffix of the models trained without guided attention in Figure 3's comparison.
UNGUIDED = " (unguided)"


@dataclass
class AttentionExample:
    """One configuration's attention on one test fragment.

    attention ``(N, M)``, side ``SideInfo`` (values ``(M, 1)``), target_mag the true normalised
    target magnitude ``(N, F)``, and the alignment measures on this fragment.
    """

    configuration: str
    clip_id: str
    attention: np.ndarray
    side: SideInfo
    target_mag: np.ndarray
    scores: dict


def figure3_caption(p: dict, data: StudyData, results: dict[str, TrainResult],
                    examples: list[AttentionExample]) -> str:
    """Figure 3's caption: the shown fragment, the alignment measures and the deviations."""
    return caption("Figure 3 (paper 2): attention weights and the alignment they encode",
                   data=describe(p, data), profile=p.profile,
                   n_clips=f"1 shown ({examples[0].clip_id}), {len(data.splits['test'])} scored",
                   iterations=f"training steps {', '.join(str(r.steps) for r in results.values())}",
                   selection="model with the best validation L1 loss",
                   metrics={"alignment accuracy": "fraction of frames whose attention argmax is the "
                            "true side-information step (frames whose step was deleted skipped)",
                            "within 3 steps": "the same with the argmax at most 3 steps from the "
                            "true step",
                            "segment accuracy": "fraction of frames whose argmax lies in the "
                            "frame's own run of equal activity (fragments with >= 2 runs)"},
                   deviations=deviations(p, data.source),
                   extra=[model_summary(p, results, data)]
                   + ([f"Rows marked{UNGUIDED} are the same configurations trained without the "
                       "guided-attention term: the paper's attention as written."]
                      if any(c.endswith(UNGUIDED) for c in results) else []))


#: Reference aligners shown as rows of their own: (column prefix, label).
REFERENCE_ALIGNERS = (("chance_", "chance: uniform argmax"), ("proportional_", "content-blind aligner"))


def reference_alignment(alignment: pd.DataFrame) -> pd.DataFrame:
    """The reference aligners' per-fragment scores as configurations of their own, one per side
    information shown (their levels depend on it, not on the model): rows of ``alignment`` whose
    ``configuration`` is e.g. ``"content-blind aligner (M2 side information)"``."""
    frames = []
    own = alignment[~alignment["configuration"].str.endswith(UNGUIDED)]
    for c, g in own.groupby("configuration", sort=False):
        for prefix, label in REFERENCE_ALIGNERS:
            columns = {f"{prefix}{m}": m for m in ALIGNMENT_METRICS if f"{prefix}{m}" in g}
            if columns:
                frames.append(g[["clip_id", *columns]].rename(columns=columns)
                              .assign(configuration=f"{label} ({c} side information)"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["configuration"])


def alignment_table(alignment: pd.DataFrame) -> pd.DataFrame:
    """Per configuration over the test fragments, then per reference aligner: the mean of each
    alignment measure with its bootstrap 95 % interval, the mean chance level and the content-blind
    aligner's mean (NaN on the reference rows themselves)."""
    out = []
    for c, g in pd.concat([alignment, reference_alignment(alignment)], ignore_index=True).groupby(
            "configuration", sort=False):
        out.append({"configuration": c, "n_fragments": int(len(g)),
                    **alignment_means(g, counts=True)})
    return pd.DataFrame(out)


def publish_figure3(alignment: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure3_alignment.csv`` / ``.md`` (alignment per configuration with intervals)."""
    table = alignment_table(alignment)
    measures = (("alignment_accuracy", "exact"), ("alignment_within_k", "within 3 steps"),
                ("segment_accuracy", "segment"))
    head = ["Config", "fragments"] + [f"{label} [95 % CI]" for _, label in measures] + \
        [f"{label}: chance / content-blind" for _, label in measures] + ["distance (steps)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):
        cells = [r["configuration"], str(r["n_fragments"])]
        for m, _ in measures:
            ci = ("" if np.isnan(r[f"{m}_low"])
                  else f" [{r[f'{m}_low']:.3f}, {r[f'{m}_high']:.3f}]")
            cells.append("—" if np.isnan(r[m]) else f"{r[m]:.3f}{ci}")
        for m, _ in measures:
            cells.append(f"{fmt(r[f'chance_{m}'], 3)} / {fmt(r[f'proportional_{m}'], 3)}")
        cells.append(fmt(r["alignment_distance"], 1))
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nMeans over test fragments; 95 % CI: percentile bootstrap over fragments. chance: the "
            "exact expected score of a uniformly random argmax over the attendable steps (content "
            "steps, the padding being masked); content-blind: frame n -> content step floor(n K / N), "
            "which knows where the padding is but not the content (exact for M2 / A1); both are also "
            "shown as rows of their own, per side information. Segment "
            "accuracy counts only fragments whose activity has at least two runs.\n")
    md = f"{caption_text}\n\n" + "\n".join(lines) + "\n" + note
    write_table(table, folder, "figure3_alignment", md)
    return md


def model_sources(results: dict[str, TrainResult]) -> dict[str, str]:
    """Where each model came from: ``"07"`` (reused from Figure 2's run) or ``"08"``."""
    return {c: ("07" if FIGURE2 in str(r.folder) else "08") for c, r in results.items()}


def figure3_checks(examples: list[AttentionExample], alignment: pd.DataFrame,
                    results: dict[str, TrainResult] | None = None) -> dict:
    """Named numbers: alignment on the shown fragment and the mean over test fragments."""
    out = {"clip_id": examples[0].clip_id if examples else None,
           "n_frames": int(N_FRAMES)}
    for c, where in model_sources(results or {}).items():
        out[f"{c}_model_from"] = where
    for ex in examples:
        for k, v in ex.scores.items():
            out[f"{ex.configuration}_{k}_shown"] = float(v)
        out[f"{ex.configuration}_attention_rows_sum"] = float(ex.attention.sum(axis=1).mean())
        out[f"{ex.configuration}_side_length"] = int(ex.side.n_steps)
    for c, g in alignment.groupby("configuration", sort=False):
        for k in ALIGNMENT_METRICS:
            if k in g and g[k].notna().any():
                out[f"{c}_{k}"] = float(g[k].mean())
    return out
