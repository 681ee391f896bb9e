"""Inpainting study: Table 3 of paper 1 (speech and digits, four prior designs)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from dap import metrics
from dap.report import paper
from dap.core.files import atomic_write_text
from dap.core.audio import SAMPLE_RATE
from dap.core.seeds import derive_seed
from dap.core.store import ResultStore
from dap.data import Clip
from dap.engine.grid import Grid, load_history, load_output, run_grid
from dap.report.plots import spectrogram_grid
from dap.config.notebook_settings import InpaintingSettings
from dap.report.tables import caption
from dap.studies.common import (BASELINE_FILE, COMMON_DEVIATIONS, baseline_note, describe_data, fit_description,
                                load_normalised, registered_baselines, run_baselines, scale_deviations, study_setup)
from dap.tasks import inpaint

#: Settings that shape the masks (part of every fit's id).
MASK_KEYS = ("gaps_per_second", "gap_min_s", "gap_max_s", "frame_rule")


def clip_mask(clip: Clip, p: InpaintingSettings) -> inpaint.GapMask:
    """The gaps of ``clip`` under the settings ``p``: drawn once per clip from the seed, so every
    design fits the same observation."""
    return inpaint.draw_gaps(len(clip.audio), seed=derive_seed(p.seed, "gaps", clip.dataset, clip.id),
                             gaps_per_second=p.gaps_per_second, min_s=p.gap_min_s, max_s=p.gap_max_s)


def inpainting_study(store: ResultStore, p: InpaintingSettings, source: str = "embedded", root=None,
                     progress=print) -> pd.DataFrame:
    """Table 3: fit every design in ``p.designs`` to ``p.n_clips`` gapped clips of each data set in
    ``p.datasets``; returns the tidy rows of this grid (one per fit, rule and metric).

    Rows carry the mask (``gaps`` = "start-end;..." in samples), ``n_gaps``, ``masked_fraction``
    and ``masked_frames``; metrics are those of :func:`dap.tasks.inpaint.evaluate`. An optional
    ``p.prior_opts`` (e.g. ``{"widths": (4, 8, 16)}``) is passed to :func:`dap.priors.build_prior`.
    The fits run one at a time in this process (``p.workers`` is not used here), as the published
    Table 3 rows were computed.
    """
    setup = study_setup(p, "inpaint", {k: getattr(p, k) for k in MASK_KEYS})
    masks: dict[tuple[str, str], inpaint.GapMask] = {}
    all_rows = []
    for dataset in p.datasets:
        clips = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)
        for c in clips:
            masks[c.dataset, c.id] = clip_mask(c, p)

        run_fit = partial(_inpaint_clip, masks=masks, cfg=setup.config, seed=p.seed, frame_rule=p.frame_rule,
                          mismatched_istft=p.mismatched_istft, prior_opts=setup.prior_opts)
        evaluate = partial(_evaluate_clip, masks=masks)
        # One fit at a time here (its rows are compared bit for bit in the reliability tests); on a
        # cluster, as many as it has workers.
        parallel = setup.parallel() if p.cluster else {}
        all_rows.append(run_grid(store, setup.grid, clips, list(p.designs), run_fit, evaluate, progress=progress,
                                 **parallel))
    return pd.concat(all_rows, ignore_index=True)


def _inpaint_clip(clip: Clip, design: str, masks: dict, cfg, seed: int, frame_rule: str, mismatched_istft: bool,
                  prior_opts: dict | None):
    """One inpainting fit (module level, so worker processes can run it)."""
    mask = masks[clip.dataset, clip.id]
    return inpaint.restore(inpaint.apply_gaps(clip.audio, mask), mask, design, cfg,
                           seed=derive_seed(seed, clip.dataset, clip.id), clean=clip.audio, frame_rule=frame_rule,
                           mismatched_istft=mismatched_istft, prior_opts=prior_opts)


def _evaluate_clip(clip: Clip, est: np.ndarray, masks: dict) -> dict[str, float]:
    return inpaint.evaluate(clip.audio, est, masks[clip.dataset, clip.id])


def inpainting_baselines(store: ResultStore, p: InpaintingSettings, source: str = "embedded", root=None,
                         progress=print) -> pd.DataFrame:
    """The trivial answer (``gapped-input``) and the classical baselines of Table 3 (``stft-interp`` and
    ``ar-interp``, :mod:`dap.baselines`)
    on the same gapped clips as :func:`inpainting_study`, scored by the same metrics (whole clip and
    inside the gaps); rows go to ``baselines.csv`` beside ``store``'s rows. Returns them."""
    settings = {"max_samples": p.max_samples, **{k: getattr(p, k) for k in MASK_KEYS}}
    grid = Grid(task="inpaint", settings=settings, profile=p.profile, seed=p.seed)
    out = ResultStore(store.folder, BASELINE_FILE)
    all_rows = []
    for dataset in p.datasets:
        clips = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)
        masks = {c.id: clip_mask(c, p) for c in clips}
        observed = {c.id: inpaint.apply_gaps(c.audio, masks[c.id]) for c in clips}
        methods = registered_baselines("inpaint", lambda c: (observed[c.id], c.audio, {"mask": masks[c.id]}))
        all_rows.append(run_baselines(out, grid, clips, methods,
                                      lambda c, est: inpaint.evaluate(c.audio, est, masks[c.id]), progress=progress))
    return pd.concat(all_rows, ignore_index=True)


def inpainting_caption(p: InpaintingSettings, source: str, rows, baselines=None) -> str:
    """The caption of Table 3 (see :func:`dap.report.tables.caption`); ``baselines``: the rows of
    :func:`inpainting_baselines` (their definition and cost go into the caption)."""
    corruption = (f"zero gaps over all frequencies, {p.gap_min_s}-{p.gap_max_s} s each, "
                  f"{p.gaps_per_second:g} per second of audio (at least one; non-overlapping, "
                  f"{inpaint.MARGIN_S} s from the clip edges and from each other), drawn once per clip from the "
                  f"seed; STFT frames masked by the '{p.frame_rule}' rule; loss = MSE over the observed "
                  "time-frequency entries")
    deviations = list(COMMON_DEVIATIONS)
    deviations.append("the number of gaps per clip is not stated in the paper; "
                      f"{p.gaps_per_second:g} per second is our choice (every mask is stored in the rows)")
    deviations += scale_deviations(p)
    failed = int((rows["status"] == "failed").sum()) if len(rows) else 0
    frac = pd.to_numeric(rows.get("masked_fraction", pd.Series(dtype=float)), errors="coerce")
    masked = f"masked fraction of the samples: mean {frac.mean():.3f}" if frac.notna().any() else ""
    return caption(f"Table3: {paper.CAPTIONS['table3']} Corruption: {corruption}.",
                   data=describe_data(source, p.datasets), profile=p.profile, n_clips=p.n_clips,
                   iterations=p.iterations,
                   selection="oracle (best whole-clip waveform SNR against the clean clip: the authors' protocol) "
                             "and blind last / EMA, all shown",
                   metrics={"Spec. SNR": metrics.DEFINITIONS["SSNR"], "Env. Dist.": metrics.DEFINITIONS["ENV"],
                            "Gap metrics": inpaint.GAP_METRIC_NOTE},
                   deviations=deviations,
                   extra=[fit_description(p, rows), masked,
                          f"failed fits: {failed}; mean ± std over clips (std ddof=1); the paper's numbers are "
                          "whole-clip metrics", baseline_note(baselines, rows)])


def inpainting_example(store: ResultStore, p: InpaintingSettings, rows, source: str = "embedded", root=None,
                       dataset: str | None = None, selection: str = "oracle"):
    """Figure material for the first clip of ``dataset`` (default: the first data set): the clip,
    its mask, waveforms ``{"clean", "observed (gaps zeroed)", "<design> (...)"}`` of each design's
    ``selection`` output, and each design's per-iteration history (``snr``, ``snr_gaps``, ...)."""
    dataset = dataset or p.datasets[0]
    clip = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)[0]
    mask = clip_mask(clip, p)
    signals = {"clean": clip.audio, "observed (gaps zeroed)": inpaint.apply_gaps(clip.audio, mask)}
    histories = {}
    ok = rows[(rows["clip_id"] == clip.id) & (rows["dataset"] == dataset) & (rows["status"] == "ok")]
    for design, fid in ok.groupby("design", sort=False)["fit_id"].first().items():
        histories[design] = load_history(store.folder, fid)
        est = load_output(store.folder, fid, selection)[0]
        gap_snr = inpaint.evaluate(clip.audio, est, mask)["SNR (gaps)"]
        signals[f"{design} (gaps: SNR {gap_snr:.1f} dB)"] = est
    return clip, mask, signals, histories


def mark_gaps(fig, mask: inpaint.GapMask, sr: int = SAMPLE_RATE) -> None:
    """Outline the gaps (dashed white) on every spectrogram axis of ``fig`` (time axis in s)."""
    for ax in fig.axes:
        if not ax.get_images():
            continue
        for start, end in mask.spans:
            ax.axvline(start / sr, color="white", ls="--", lw=0.8)
            ax.axvline(end / sr, color="white", ls="--", lw=0.8)


def inpainting_figure(signals: dict[str, np.ndarray], mask: inpaint.GapMask, title: str = ""):
    """Spectrograms of the clean / observed / restored clips, gaps marked."""
    fig = spectrogram_grid(signals, ncols=3)
    mark_gaps(fig, mask)
    if title:
        fig.suptitle(title, fontsize=9, y=1.02)
    return fig


def mask_checks(rows: pd.DataFrame) -> dict:
    """Named numbers about the masks actually used (read back from the rows), for the notebook's
    tests: clips masked, gap count range, shortest / longest gap in seconds, masked fraction."""
    # one mask per clip (every design sees the same one)
    fits = rows.dropna(subset=["gaps"]).drop_duplicates(["dataset", "clip_id"]) if "gaps" in rows else rows.iloc[:0]
    durations, counts = [], []
    for text in fits["gaps"].astype(str):
        spans = [tuple(int(v) for v in part.split("-")) for part in text.split(";") if part]
        durations += [(e - s) / SAMPLE_RATE for s, e in spans]
        counts.append(len(spans))
    if not durations:
        return {"n_masks": 0}
    return {"n_masks": int(len(fits)), "min_gaps": int(min(counts)), "max_gaps": int(max(counts)),
            "shortest_gap_s": float(min(durations)), "longest_gap_s": float(max(durations)),
            "mean_masked_fraction": float(pd.to_numeric(fits["masked_fraction"]).mean())}


#: Metrics of the gap table (inside the gaps, and the whole-clip SNR beside them).
GAP_TABLE_METRICS = ("Spec. SNR (gaps)", "Env. Dist. (gaps)", "SNR (gaps)", "SNR")
#: The gap table's file in the notebook's folder.
GAP_TABLE_FILE = "table3_gaps.csv"


def gap_table(rows: pd.DataFrame, baselines: pd.DataFrame | None = None,
              metrics=GAP_TABLE_METRICS) -> pd.DataFrame:
    """What Table 3 does not show: the restoration *inside the gaps*.

    Mean over clips of each metric in ``metrics`` per (data set, design) row and (selection rule,
    metric) column, from the successful fits of ``rows`` and the classical ``baselines`` (rows of
    :func:`inpainting_baselines`, selection ``"none"``); rounded to 2 decimals.
    """
    both = pd.concat([rows, baselines], ignore_index=True) if baselines is not None else rows
    ok = both[(both["status"] == "ok") & both["metric"].isin(list(metrics))]
    return ok.pivot_table(index=["dataset", "design"], columns=["selection", "metric"], values="value",
                          aggfunc="mean", sort=False).round(2)


def write_gap_table(table: pd.DataFrame, folder) -> Path:
    """Write :func:`gap_table`'s ``table`` to ``<folder>/table3_gaps.csv`` (atomically); returns the path."""
    return atomic_write_text(Path(folder) / GAP_TABLE_FILE, table.to_csv())
