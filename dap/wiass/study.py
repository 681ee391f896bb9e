"""Paper 2's experiments as the notebooks call them: Figure 2 (07) and Figure 3 (08).

* :func:`figure2_study` trains every configuration (BL1, BL2, M1, M2, A1, A2, A3.1; resumable
  checkpoints under ``results/07_.../models/<configuration>-<settings id>/``) and evaluates them
  plus A3.2 (the A3.1 model with side information shifted by 100 steps) on the test fragments:
  tidy rows in ``rows.csv``.
* :func:`summary_table` / :func:`publish_figure2` turn rows into the table of medians per
  configuration (the boxes' middle lines of the paper's Figure 2) and mean alignment accuracy.
* :func:`figure3_study` reuses 07's trained models when they exist (same settings id), otherwise
  trains what it needs into its own folder, and returns the attention of M2 and A3.1 (and A3.2)
  on one test fragment plus the alignment accuracy over all test fragments.

A resolved profile ``p`` (see :mod:`dap.profiles`) carries: ``seed``, ``configurations``, model size
``hidden`` / ``n_layers``, training ``lr``, ``weight_decay``, ``batch_size``, ``epochs``,
``patience``, ``max_steps``, data ``n_train``, ``n_valid``, ``n_test``, ``copies``, ``gain_db``,
``pitch``, ``circular_shift``, side information ``side_length``, ``activity_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dap.results import ResultStore, results_root
from dap.wiass.data import (CONFIGURATIONS, EVALUATIONS, N_FRAMES, N_FREQ, SpectrogramSet,
                            fixed_side_info, load_splits, side_kind)
from dap.wiass.evaluate import (ALIGNMENT_METRICS, SEPARATION_METRICS, alignment_metrics,
                                evaluate_configuration, separate)
from dap.wiass.model import count_parameters
from dap.wiass.side_info import SideInfo
from dap.wiass.train import TrainResult, TrainSettings, is_trained, pick_device, train

FIGURE2 = "07_wiass_figure2_side_information"
FIGURE3 = "08_wiass_figure3_attention"
TRAINED = tuple(CONFIGURATIONS)
EVALUATED = tuple(EVALUATIONS)
#: The only numbers of Figure 2 the paper states in its text (section 5): median SDR in dB.
PAPER_MEDIAN_SDR = {"BL1": 3.0, "BL2": 3.33}
#: Settings of the paper (section 4), for the deviation list of the captions.
PAPER = {"hidden": 513, "lr": 1e-4, "batch_size": 128, "patience": 100, "copies": 4,
         "gain_db": 2.0, "pitch": 2, "activity_threshold": 0.1}


#: What each profile is for, stated in every caption.
PROFILE_NOTES = {
    "smoke": "smoke profile: a code check (tiny model, a couple of training steps, one test "
             "fragment); the numbers mean nothing",
    "quick": "quick profile: a reduced model and training budget (below), sized so that notebooks "
             "07 and 08 together take about 20-25 minutes on 2 CPU cores; at this budget the "
             "models barely leave the trivial solution and the attention does not align yet, so "
             "the figures check the pipeline rather than the paper's claims: use the paper "
             "profile on a GPU for those",
    "paper": "paper profile: the paper's sizes and protocol (hidden 513, batch 128, lr 1e-4, early "
             "stopping with patience 100); meant for a GPU",
}


@dataclass
class StudyData:
    """Fragments per split and the spectrogram sets built from them."""

    splits: dict
    train_set: SpectrogramSet
    valid_set: SpectrogramSet
    test_set: SpectrogramSet
    source: str


def data_settings(p: dict, source: str) -> dict:
    """What in ``p`` decides the training data (part of every model id)."""
    keys = ("n_train", "n_valid", "copies", "gain_db", "pitch", "circular_shift", "seed")
    return {"source": source, **{k: p[k] for k in keys}}


def load_study_data(p: dict, source: str = "embedded", root=None) -> StudyData:
    """Split the stems, augment the training fragments ``copies`` times, build the sets."""
    splits = load_splits(source, root, n_train=p["n_train"], n_valid=p["n_valid"],
                         n_test=p["n_test"], seed=p["seed"])
    for name, frags in splits.items():
        if not frags:
            from dap.errors import DatasetError

            raise DatasetError(f"the {name} split of the {source} stems is empty")
    train_set = SpectrogramSet(splits["train"], copies=p["copies"], seed=p["seed"],
                               gain_db=p["gain_db"], pitch=p["pitch"],
                               circular_shift=p["circular_shift"])
    return StudyData(splits, train_set, SpectrogramSet(splits["valid"]),
                     SpectrogramSet(splits["test"]), source)


def train_settings(p: dict, configuration: str, source: str) -> TrainSettings:
    """The :class:`TrainSettings` of ``configuration`` under profile ``p``."""
    return TrainSettings(configuration=configuration, hidden=p["hidden"], n_layers=p["n_layers"],
                         lr=p["lr"], weight_decay=p["weight_decay"], batch_size=p["batch_size"],
                         epochs=p["epochs"], patience=p["patience"], max_steps=p["max_steps"],
                         side_length=p["side_length"],
                         activity_threshold=p["activity_threshold"], seed=p["seed"],
                         checkpoint_every=p.get("checkpoint_every"),
                         data=data_settings(p, source))


def model_folder(folder: str | Path, settings: TrainSettings) -> Path:
    """``<folder>/models/<configuration>-<settings id>``."""
    return Path(folder) / "models" / f"{settings.configuration}-{settings.id}"


def train_configurations(p: dict, data: StudyData, folder: str | Path, configurations,
                         reuse_from=(), progress: bool = True) -> dict[str, TrainResult]:
    """Train (or resume, or load) each configuration's model.

    A finished model with the same settings id in one of the ``reuse_from`` folders (e.g. 07's
    results when 08 runs) is loaded instead of trained.
    """
    out = {}
    for configuration in configurations:
        settings = train_settings(p, configuration, data.source)
        where = model_folder(folder, settings)
        for other in reuse_from:
            candidate = model_folder(other, settings)
            if is_trained(candidate):
                where = candidate
                break
        out[configuration] = train(settings, data.train_set, data.valid_set, where,
                                   progress=progress)
    return out


def _trained_needed(evaluations) -> list[str]:
    need = []
    for e in evaluations:
        if e not in EVALUATIONS:
            raise ValueError(f"unknown configuration {e!r}; choose from {list(EVALUATIONS)}")
        if EVALUATIONS[e] not in need:
            need.append(EVALUATIONS[e])
    return need


def figure2_study(store: ResultStore, p: dict, source: str = "embedded", root=None,
                  progress: bool = True) -> tuple[pd.DataFrame, StudyData, dict[str, TrainResult]]:
    """Train every configuration of ``p["configurations"]`` and evaluate it on the test split.

    Returns (rows of this study, the data, the training results per trained configuration).
    """
    data = load_study_data(p, source, root)
    results = train_configurations(p, data, store.folder, _trained_needed(p["configurations"]),
                                   progress=progress)
    frames = [evaluate_configuration(store, results[EVALUATIONS[e]], e, data.test_set, p["seed"],
                                     p["profile"], source, progress=progress)
              for e in p["configurations"]]
    return pd.concat(frames, ignore_index=True), data, results


# ----------------------------------------------------------------------------- tables
def summary_table(rows: pd.DataFrame, configurations=EVALUATED) -> pd.DataFrame:
    """One row per configuration: the median over fragments of SDR, SAR, SIR, PES, EPS (NaN
    fragments skipped), fragment and frame counts, and the mean alignment measures."""
    ok = rows[rows["status"].fillna("ok") == "ok"].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce")
    out = []
    for c in configurations:
        g = ok[ok["design"] == c]
        if g.empty:
            continue
        by = g.pivot_table(index="clip_id", columns="metric", values="value", aggfunc="first")
        rec = {"configuration": c, "n_fragments": int(by.shape[0])}
        for m in ("SDR", "SAR", "SIR", "PES", "EPS"):
            v = by[m].dropna() if m in by else pd.Series(dtype=float)
            rec[f"{m}_median"] = float(v.median()) if len(v) else np.nan
            rec[f"{m}_n"] = int(len(v))
        for m in ("n_pes_frames", "n_eps_frames", "n_windows"):
            rec[m] = int(by[m].sum()) if m in by else 0
        for m in ALIGNMENT_METRICS:
            rec[m] = float(by[m].mean()) if m in by and by[m].notna().any() else np.nan
        rec["paper_SDR_median"] = PAPER_MEDIAN_SDR.get(c, np.nan)
        rec["failed"] = int((rows[(rows["design"] == c)]["status"] == "failed").sum())
        out.append(rec)
    return pd.DataFrame(out)


def _fmt(x, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def markdown_summary(table: pd.DataFrame, caption: str) -> str:
    """The summary table as markdown under its caption."""
    head = ["Config", "SDR", "SAR", "SIR", "PES", "EPS (frames)", "align. acc.", "segment acc.",
            "align. dist.", "paper SDR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        lines.append("| " + " | ".join([
            r.configuration, _fmt(r.SDR_median), _fmt(r.SAR_median), _fmt(r.SIR_median),
            f"{_fmt(r.PES_median)} ({r.n_pes_frames})", f"{_fmt(r.EPS_median)} ({r.n_eps_frames})",
            _fmt(r.alignment_accuracy, 3), _fmt(r.segment_accuracy, 3),
            _fmt(r.alignment_distance, 1), _fmt(r.paper_SDR_median)]) + " |")
    note = ("\nMedians over test fragments of the per-fragment scores (dB; SDR / SAR / SIR higher is "
            "better, PES / EPS lower is better); in brackets the number of 1-s frames PES / EPS "
            "average over, summed over fragments. PES / EPS are energies of the estimate / target "
            "at the stems' own level (embedded stems peak near 0.9), so their absolute values "
            "are not comparable with the paper's. Alignment measures: mean over fragments.\n")
    return f"{caption}\n\n" + "\n".join(lines) + "\n" + note


def silence_loss(valid_set: SpectrogramSet) -> float:
    """Validation L1 loss of predicting silence (all zeros): the trivial solution a model must beat
    before its output means anything."""
    total = sum(float(valid_set[i].target_mag.abs().sum()) for i in range(len(valid_set)))
    return total / sum(valid_set[i].target_mag.numel() for i in range(len(valid_set)))


def model_summary(p: dict, results: dict[str, TrainResult], data: StudyData | None = None) -> str:
    """One line: model size and the training actually run per configuration (with the best
    validation loss, next to the loss of predicting silence when ``data`` is given)."""
    from dap.wiass.model import InformedSeparator

    n_inf = count_parameters(InformedSeparator(N_FREQ, p["hidden"], n_layers=p["n_layers"]))
    n_bl1 = count_parameters(InformedSeparator(N_FREQ, p["hidden"], variant="bl1",
                                               n_layers=p["n_layers"]))
    note = PROFILE_NOTES.get(p["profile"], "")
    runs = "; ".join(f"{c}: {r.steps} steps / {r.epochs} epochs, best epoch {r.best_epoch} "
                     f"(val L1 {r.best_val:.5f}), {r.seconds:.0f} s on {r.device}"
                     for c, r in results.items())
    if data is not None:
        runs += (f". Validation L1 of predicting silence: {silence_loss(data.valid_set):.5f} (a "
                 "model near it has not yet learned to separate)")
    return ((note[0].upper() + note[1:] + ". " if note else "")
            + f"Model: hidden {p['hidden']} per direction, {p['n_layers']} BiLSTM layers "
            f"({n_inf:,} parameters informed, {n_bl1:,} BL1; the paper's hidden 513 gives 32.2 M). "
            f"Training: Adam lr {p['lr']:g}, weight decay {p['weight_decay']:g}, batch "
            f"{p['batch_size']}, at most {p['epochs']} epochs"
            + (f" / {p['max_steps']} steps" if p["max_steps"] else "")
            + (f", patience {p['patience']}" if p["patience"] else "") + f". Runs: {runs}.")


def deviations(p: dict, source: str) -> list[str]:
    """What differs from the paper under profile ``p`` (REFERENCE_NOTES.md, Paper 2)."""
    out = []
    if source == "embedded":
        out.append("embedded substitute stems (lead guitar of Frets-on-Fire songs, sung Scratch "
                   "phrases over loops, rendered chorale soprano) instead of MUSDB18 vocals; "
                   "scores are per 8.192-s fragment, not per song")
    else:
        out.append("scores are per 8.192-s fragment (windows spread over the tracks), not per song")
    if p["hidden"] < PAPER["hidden"] or p["patience"] != PAPER["patience"]:
        out.append(f"reduced scale ({p['profile']} profile): hidden {p['hidden']} instead of 513, "
                   f"training capped at {p['epochs']} epochs"
                   + (f" / {p['max_steps']} steps" if p["max_steps"] else "")
                   + " instead of early stopping with patience 100")
    if p["lr"] != PAPER["lr"]:
        out.append(f"learning rate {p['lr']:g} instead of 1e-4 (short budget)")
    if p["batch_size"] != PAPER["batch_size"]:
        out.append(f"batch {p['batch_size']} instead of 128 (small training set)")
    if p["copies"] != PAPER["copies"]:
        out.append(f"{p['copies']} augmented cop{'y' if p['copies'] == 1 else 'ies'} per "
                   "fragment instead of 4")
    out.append("both spectrograms normalised by the mixture's maximum (the paper: each by its "
               "own; the target's own maximum is unknown at test time)")
    out.append("256 frames: the 257th frame of the centred STFT (half padding) is dropped")
    if p["pitch"]:
        out.append("pitch-shift ratios rounded so that resampling is fast (< 9 cents off)")
    if p["circular_shift"]:
        out.append("added augmentation: circular time shift of both stems")
    if p["activity_threshold"] != PAPER["activity_threshold"]:
        out.append(f"activity threshold {p['activity_threshold']:g} (a frame is active unless "
                   "its target magnitude is exactly zero) instead of 0.1")
    out.append("BL2 is fed N = 256 ones (the paper does not give the length)")
    return out


def describe(p: dict, data: StudyData) -> str:
    s = data.splits
    copies = f", x{p['copies']} augmented" if p["copies"] else ""
    what = "embedded stems" if data.source == "embedded" else "MUSDB18-HQ"
    return (f"{what}: {len(s['train'])} training fragments{copies} "
            f"({len(data.train_set)} examples), {len(s['valid'])} validation, "
            f"{len(s['test'])} test fragments of 8.192 s at 16 kHz "
            f"({sum(f.silent_frames() for f in s['test'])} silent 1-s target frames in test)")


def figure2_caption(p: dict, data: StudyData, results: dict[str, TrainResult]) -> str:
    from dap.metrics import DEFINITIONS
    from dap.report import caption

    steps = sorted({r.steps for r in results.values()})
    return caption("Figure 2 (paper 2): separation with side information of decreasing strength",
                   data=describe(p, data), profile=p["profile"], n_clips=len(data.splits["test"]),
                   iterations=f"training steps {', '.join(map(str, steps))}",
                   selection="model with the best validation L1 loss",
                   metrics={k: v for k, v in DEFINITIONS.items() if k in ("SDR", "PES", "EPS")},
                   deviations=deviations(p, data.source), extra=[model_summary(p, results, data)])


def publish_figure2(table: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure2_medians.csv`` and ``figure2_medians.md``; return the markdown."""
    from dap.report import write_table

    md = markdown_summary(table, caption_text)
    write_table(table, folder, "figure2_medians", md)
    return md


def figure2_metrics(table: pd.DataFrame, results: dict[str, TrainResult] | None = None,
                    data: StudyData | None = None) -> dict:
    """Named numbers for ``metrics.json``: medians per configuration, alignment of M2 / A3.1,
    and (given ``results`` / ``data``) best validation losses and the loss of predicting silence."""
    out = {"n_configurations": int(len(table))}
    for c, r in (results or {}).items():
        out[f"{c}_best_val_loss"] = float(r.best_val)
        out[f"{c}_steps"] = int(r.steps)
    if data is not None:
        out["silence_val_loss"] = silence_loss(data.valid_set)
    for r in table.to_dict("records"):
        c = r["configuration"]
        for m in SEPARATION_METRICS:
            out[f"{c}_{m}_median"] = r[f"{m}_median"]
        out[f"{c}_n_fragments"] = r["n_fragments"]
        out[f"{c}_n_pes_frames"] = r["n_pes_frames"]
        for m in ALIGNMENT_METRICS:
            if not np.isnan(r[m]):
                out[f"{c}_{m}"] = r[m]
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


# ----------------------------------------------------------------------------- figure 3
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


def pick_fragment(test_set: SpectrogramSet, clip_id: str | None = None) -> int:
    """Index of the test example to show: ``clip_id`` if given, else the fragment whose target has
    the most silent 1-s frames (alternations of activity make the attention readable; ties: first
    in id order)."""
    ids = [f.id for f in test_set.fragments]
    if clip_id is not None:
        if clip_id not in ids:
            raise ValueError(f"no test fragment {clip_id!r}; test fragments: {ids}")
        return ids.index(clip_id)
    silent = [f.silent_frames() for f in test_set.fragments]
    return int(np.argmax(silent))


def figure3_study(p: dict, source: str = "embedded", root=None, folder=None, reuse_from=None,
                  progress: bool = True) -> tuple[list[AttentionExample], pd.DataFrame, StudyData,
                                                  dict[str, TrainResult]]:
    """Attention of ``p["attention_configurations"]`` on one test fragment, and alignment over all.

    Models come from 07's folder when trained there with the same settings, else are trained into
    ``folder`` (08's). Returns (examples on the shown fragment, per-fragment alignment table with
    columns configuration / clip_id / metric..., data, training results).
    """
    folder = Path(folder) if folder is not None else results_root() / FIGURE3
    reuse = [results_root() / FIGURE2] if reuse_from is None else list(reuse_from)
    data = load_study_data(p, source, root)
    configs = list(p["attention_configurations"])
    for c in configs:
        if side_kind(c) in (None, "ones"):
            raise ValueError(f"{c} has no meaningful side information to attend to")
    results = train_configurations(p, data, folder, _trained_needed(configs), reuse_from=reuse,
                                   progress=progress)
    shown = pick_fragment(data.test_set, p.get("clip_id"))
    examples, records = [], []
    for c in configs:
        result = results[EVALUATIONS[c]]
        for i in range(len(data.test_set)):
            ex = data.test_set[i]
            side = fixed_side_info(side_kind(c), ex, p["seed"], **result.settings.side_options())
            sep = separate(result.model, ex, side, device=pick_device())
            scores = alignment_metrics(sep.attention, side)
            records.append({"configuration": c, "clip_id": ex.id, **scores})
            if i == shown:
                examples.append(AttentionExample(c, ex.id, sep.attention, side,
                                                 ex.target_mag.numpy(), scores))
    return examples, pd.DataFrame(records), data, results


def figure3_caption(p: dict, data: StudyData, results: dict[str, TrainResult],
                    examples: list[AttentionExample]) -> str:
    from dap.report import caption

    return caption("Figure 3 (paper 2): attention weights and the alignment they encode",
                   data=describe(p, data), profile=p["profile"],
                   n_clips=f"1 shown ({examples[0].clip_id}), {len(data.splits['test'])} scored",
                   iterations=f"training steps {', '.join(str(r.steps) for r in results.values())}",
                   selection="model with the best validation L1 loss",
                   metrics={"alignment accuracy": "fraction of frames whose attention argmax is the "
                            "true side-information step (frames whose step was deleted skipped)",
                            "segment accuracy": "fraction of frames whose argmax lies in the "
                            "frame's own run of equal activity"},
                   deviations=deviations(p, data.source), extra=[model_summary(p, results, data)])


def alignment_table(alignment: pd.DataFrame) -> pd.DataFrame:
    """Mean (and count) of the alignment measures per configuration over the test fragments."""
    cols = [c for c in ALIGNMENT_METRICS if c in alignment]
    agg = alignment.groupby("configuration", sort=False)[cols].mean().reset_index()
    agg.insert(1, "n_fragments", alignment.groupby("configuration", sort=False).size().values)
    return agg


def publish_figure3(alignment: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure3_alignment.csv`` / ``.md`` (mean alignment per configuration)."""
    from dap.report import write_table

    table = alignment_table(alignment)
    lines = ["| Config | fragments | alignment acc. | segment acc. | alignment dist. (steps) |",
             "|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        lines.append(f"| {r['configuration']} | {r['n_fragments']} | "
                     f"{_fmt(r.get('alignment_accuracy', np.nan), 3)} | "
                     f"{_fmt(r.get('segment_accuracy', np.nan), 3)} | "
                     f"{_fmt(r.get('alignment_distance', np.nan), 1)} |")
    md = f"{caption_text}\n\n" + "\n".join(lines) + "\n"
    write_table(table, folder, "figure3_alignment", md)
    return md


def model_sources(results: dict[str, TrainResult]) -> dict[str, str]:
    """Where each model came from: ``"07"`` (reused from Figure 2's run) or ``"08"``."""
    return {c: ("07" if FIGURE2 in str(r.folder) else "08") for c, r in results.items()}


def figure3_metrics(examples: list[AttentionExample], alignment: pd.DataFrame,
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
