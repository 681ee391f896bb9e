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

from dap.claims import bootstrap_interval
from dap.core.errors import DatasetError
from dap.core.files import results_root
from dap.core.store import ResultStore, fit_id
from dap.wiass.data import (CONFIGURATIONS, EVALUATIONS, N_FRAMES, N_FREQ, SpectrogramSet,
                            fixed_side_info, load_splits, side_kind)
from dap.wiass.evaluate import (ALIGNMENT_METRICS, SEPARATION_METRICS, alignment_metrics,
                                evaluate_configuration, evaluate_references, separate)
from dap.wiass.model import count_parameters
from dap.wiass.references import REFERENCES, constant_mask, l1_loss
from dap.wiass.remix import RemixSet, gated_fragments
from dap.wiass.side_info import SideInfo
from dap.wiass.train import TrainResult, TrainSettings, is_trained, pick_device, train

FIGURE2 = "07_wiass_figure2_side_information"
FIGURE3 = "08_wiass_figure3_attention"
TRAINED = tuple(CONFIGURATIONS)
#: Label suffix of the models trained without guided attention in Figure 3's comparison.
UNGUIDED = " (unguided)"
EVALUATED = tuple(EVALUATIONS)
#: The only numbers of Figure 2 the paper states in its text (section 5): median SDR in dB.
PAPER_MEDIAN_SDR = {"BL1": 3.0, "BL2": 3.33}
#: Metrics where lower is better (for paired comparisons).
LOWER_IS_BETTER = ("L1", "PES", "EPS", "alignment_distance")
#: Settings of the paper (section 4), for the deviation list of the captions.
PAPER = {"hidden": 513, "lr": 1e-4, "batch_size": 128, "patience": 100, "copies": 4,
         "gain_db": 2.0, "pitch": 2, "activity_threshold": 0.1}


#: What each profile is for, stated in every caption.
PROFILE_NOTES = {
    "smoke": "smoke profile: a code check (tiny model, a couple of training steps, one test "
             "fragment); the numbers mean nothing",
    "quick": "quick profile: a reduced model (hidden 64) and a fixed budget of 600 steps per "
             "configuration on remixed embedded stems, sized so that notebooks 07 and 08 together "
             "take about 25 minutes on 2 CPU cores; compare the models with the reference rows "
             "before reading anything into their differences",
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
    _mask: object = None

    @property
    def constant_mask(self):
        """The best constant per-frequency mask ``(F,)`` on the training examples (fitted once)."""
        if self._mask is None:
            self._mask = constant_mask(self.train_set)
        return self._mask


def data_settings(p: dict, source: str) -> dict:
    """What in ``p`` decides the training data (part of every model id)."""
    keys = ("n_train", "n_valid", "copies", "gain_db", "pitch", "circular_shift", "seed", "remix",
            "gate_eval")
    return {"source": source, **{k: p[k] for k in keys}}


def load_study_data(p: dict, source: str = "embedded", root=None) -> StudyData:
    """Split the stems and build the sets.

    Training: ``p["remix"]`` remixed examples (:class:`dap.wiass.remix.RemixSet`) when > 0, else
    the paper's ``copies`` augmented copies per fragment. Validation and test: the real pairs, with
    whole 1-s frames of the target gated to silence until each has two silent runs when
    ``p["gate_eval"]`` (:func:`dap.wiass.remix.gated_fragments`). ``p["strict_sizes"]`` makes a
    split smaller than asked for an error instead of a silent cut (the paper profile)."""
    splits = load_splits(source, root, n_train=p["n_train"], n_valid=p["n_valid"],
                         n_test=p["n_test"], seed=p["seed"], strict=p["strict_sizes"])
    for name, frags in splits.items():
        if not frags:
            raise DatasetError(f"the {name} split of the {source} stems is empty")
    if p["gate_eval"]:
        splits = {**splits, **{k: gated_fragments(splits[k], p["seed"]) for k in ("valid", "test")}}
    if p["remix"]:
        train_set = RemixSet(splits["train"], p["remix"], seed=p["seed"], gain_db=p["gain_db"])
    else:
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
                         checkpoint_every=p.get("checkpoint_every"), decay=p["decay"],
                         mask_padding=p["mask_padding"], output_leak=p["output_leak"],
                         guide_weight=p["guide_weight"], data=data_settings(p, source))


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
    frames.append(evaluate_references(store, data.test_set, data.constant_mask, p["seed"],
                                      p["profile"], source, fit_id(data_settings(p, source))))
    return pd.concat(frames, ignore_index=True), data, results


# ----------------------------------------------------------------------------- tables
def summary_table(rows: pd.DataFrame, configurations=EVALUATED) -> pd.DataFrame:
    """One row per configuration, then one per reference estimate found in ``rows``.

    Columns: the median over fragments of SDR, SAR, SIR, PES, EPS, L1 (NaN fragments skipped) and
    their counts, summed PES / EPS frame counts, the mean alignment measures with a bootstrap 95 %
    interval over fragments and the mean chance / content-blind levels on the same fragments, the
    paper's number where it states one, and ``kind`` = ``"model"`` or ``"reference"``."""
    ok = rows[rows["status"].fillna("ok") == "ok"].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce")
    present = set(ok["design"])
    out = []
    for c in [*configurations, *(r for r in REFERENCES if r in present)]:
        g = ok[ok["design"] == c]
        if g.empty:
            continue
        by = g.pivot_table(index="clip_id", columns="metric", values="value", aggfunc="first")
        rec = {"configuration": c, "kind": "reference" if c in REFERENCES else "model",
               "n_fragments": int(by.shape[0])}
        for m in SEPARATION_METRICS:
            v = by[m].dropna() if m in by else pd.Series(dtype=float)
            rec[f"{m}_median"] = float(v.median()) if len(v) else np.nan
            rec[f"{m}_n"] = int(len(v))
        for m in ("n_pes_frames", "n_eps_frames", "n_windows"):
            rec[m] = int(by[m].sum()) if m in by else 0
        for m in ALIGNMENT_METRICS:
            v = by[m].dropna() if m in by else pd.Series(dtype=float)
            rec[m] = float(v.mean()) if len(v) else np.nan
            rec[f"{m}_low"], rec[f"{m}_high"] = bootstrap_interval(v.to_numpy())
            for ref in ("chance", "proportional"):
                key = f"{ref}_{m}"
                rec[key] = float(by[key].mean()) if key in by and by[key].notna().any() else np.nan
        rec["paper_SDR_median"] = PAPER_MEDIAN_SDR.get(c, np.nan)
        rec["failed"] = int((rows[(rows["design"] == c)]["status"] == "failed").sum())
        out.append(rec)
    return pd.DataFrame(out)


def _fmt(x, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _with_interval(r: dict, m: str, digits: int = 3) -> str:
    """``mean [low, high] (chance c)`` of an alignment measure, or a dash."""
    if np.isnan(r[m]):
        return "—"
    ci = "" if np.isnan(r[f"{m}_low"]) else f" [{r[f'{m}_low']:.{digits}f}, {r[f'{m}_high']:.{digits}f}]"
    chance = r.get(f"chance_{m}", np.nan)
    return f"{r[m]:.{digits}f}{ci} (chance {_fmt(chance, digits)})"


def markdown_summary(table: pd.DataFrame, caption: str) -> str:
    """The summary table as markdown under its caption (models, then the reference estimates)."""
    head = ["Config", "SDR", "SAR", "SIR", "PES (frames)", "EPS (frames)", "test L1",
            "align. acc. [95 % CI] (chance)", "segment acc. [95 % CI] (chance)", "paper SDR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):
        name = r["configuration"] if r["kind"] == "model" else f"*ref: {r['configuration']}*"
        lines.append("| " + " | ".join([
            name, _fmt(r["SDR_median"]), _fmt(r["SAR_median"]), _fmt(r["SIR_median"]),
            f"{_fmt(r['PES_median'])} ({r['n_pes_frames']})",
            f"{_fmt(r['EPS_median'])} ({r['n_eps_frames']})", _fmt(r["L1_median"], 5),
            _with_interval(r, "alignment_accuracy"), _with_interval(r, "segment_accuracy"),
            _fmt(r["paper_SDR_median"])]) + " |")
    note = ("\nMedians over test fragments of the per-fragment scores (dB; SDR / SAR / SIR higher is "
            "better, PES / EPS lower is better); in brackets the number of 1-s frames PES / EPS "
            "average over, summed over fragments. PES / EPS are energies of the estimate / target "
            "at the stems' own level (embedded stems peak near 0.9), so their absolute values "
            "are not comparable with the paper's. test L1: mean absolute error of the normalised "
            "magnitude (the training loss). Reference rows (*ref:*) are scored with the same "
            "metrics: silence (all-zero target estimate), the best constant per-frequency mask "
            "fitted on the training examples, and the oracle (true target magnitude with the "
            "mixture phase). Alignment: mean over fragments with a percentile-bootstrap 95 % "
            "interval over fragments, beside the exact chance level of a uniformly random argmax "
            "over the attendable steps on the same fragments.\n")
    return f"{caption}\n\n" + "\n".join(lines) + "\n" + note


def beats_reference(rows: pd.DataFrame, configuration: str, reference: str = "constant-mask",
                    metric: str = "L1") -> dict:
    """Paired comparison over test fragments of a configuration with a reference estimate.

    Returns n, the mean difference (reference minus configuration for L1 / PES / EPS, where lower
    is better; configuration minus reference otherwise, so positive = the configuration is better),
    its bootstrap 95 % interval and ``wins`` (fragments where the configuration is better)."""
    ok = rows[(rows["status"].fillna("ok") == "ok") & (rows["metric"] == metric)]
    ok = ok.assign(value=pd.to_numeric(ok["value"], errors="coerce"))
    wide = ok.pivot_table(index="clip_id", columns="design", values="value", aggfunc="first")
    if configuration not in wide or reference not in wide:
        return {"n": 0, "mean": np.nan, "low": np.nan, "high": np.nan, "wins": 0}
    pair = wide[[configuration, reference]].dropna()
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    d = sign * (pair[configuration] - pair[reference]).to_numpy()
    low, high = bootstrap_interval(d)
    return {"n": int(d.size), "mean": float(d.mean()) if d.size else np.nan, "low": low,
            "high": high, "wins": int(np.sum(d > 0))}


def silence_loss(valid_set: SpectrogramSet) -> float:
    """Validation L1 loss of predicting silence (all zeros): the trivial solution a model must beat
    before its output means anything."""
    return l1_loss("silence", valid_set)


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
        runs += (f". Validation L1 of the references: silence {silence_loss(data.valid_set):.5f}, "
                 f"best constant per-frequency mask "
                 f"{l1_loss('constant-mask', data.valid_set, data.constant_mask):.5f} (a model "
                 "near them has not learned to separate)")
    return ((note[0].upper() + note[1:] + ". " if note else "")
            + f"Model: hidden {p['hidden']} per direction, {p['n_layers']} BiLSTM layers "
            f"({n_inf:,} parameters informed, {n_bl1:,} BL1; the paper's hidden 513 gives 32.2 M). "
            f"Training: {'AdamW' if p['decay'] == 'decoupled' else 'Adam (L2 decay)'} lr "
            f"{p['lr']:g}, weight decay {p['weight_decay']:g}, batch "
            f"{p['batch_size']}, at most {p['epochs']} epochs"
            + (f" / {p['max_steps']} steps" if p["max_steps"] else "")
            + (f", patience {p['patience']}" if p["patience"] else "") + f". Runs: {runs}.")


def deviations(p: dict, source: str) -> list[str]:
    """What differs from the paper under profile ``p`` (docs/wiass.md)."""
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
    if p["remix"]:
        out.append(f"training data: {p['remix']} remixed examples (the target of one training "
                   "fragment over the accompaniment of another, random circular shifts, energy "
                   f"ratio +-{p['gain_db']:g} dB, 1-3 random runs of the target gated to exact "
                   "silence; real stems, artificial mixtures) instead of 4 augmented copies per "
                   "fragment with pitch shifts")
    elif p["copies"] != PAPER["copies"]:
        out.append(f"{p['copies']} augmented cop{'y' if p['copies'] == 1 else 'ies'} per "
                   "fragment instead of 4")
    if p["gate_eval"]:
        out.append("validation and test targets: whole 1-s frames gated to exact silence until "
                   "every fragment has two silent runs (so PES and the activity alignment are "
                   "defined on every fragment)")
    if p["decay"] == "decoupled" and p["weight_decay"]:
        out.append(f"weight decay {p['weight_decay']:g} applied as decoupled decay (AdamW): "
                   "Adam's coupled L2 term removed the encoders' input weights (docs/wiass.md)")
    if p["mask_padding"]:
        out.append("the padding is masked out of the attention's softmax (the paper lets the "
                   "model learn to ignore it; unmasked it became an attention sink)")
    if p["output_leak"]:
        out.append(f"leaky output (slope {p['output_leak']:g}) during training only; evaluation "
                   "uses the paper's ReLU (exact zeros kept)")
    if p["guide_weight"]:
        out.append(f"guided attention during training (weight {p['guide_weight']:g}): a term "
                   "that uses the generated side information's known alignment, not in the paper")
    out.append("both spectrograms normalised by the mixture's maximum (the paper: each by its "
               "own; the target's own maximum is unknown at test time)")
    out.append("256 frames: the 257th frame of the centred STFT (half padding) is dropped")
    if p["pitch"] and not p["remix"]:
        out.append("pitch-shift ratios rounded so that resampling is fast (< 9 cents off)")
    if p["circular_shift"] and not p["remix"]:
        out.append("added augmentation: circular time shift of both stems")
    if p["activity_threshold"] != PAPER["activity_threshold"]:
        out.append(f"activity threshold {p['activity_threshold']:g} (a frame is active unless "
                   "its target magnitude is exactly zero) instead of 0.1")
    out.append("BL2 is fed N = 256 ones (the paper does not give the length)")
    return out


def describe(p: dict, data: StudyData) -> str:
    s = data.splits
    copies = ("remixed into" if p["remix"] else f"x{p['copies']} augmented," if p["copies"]
              else "giving")
    what = "embedded stems" if data.source == "embedded" else "MUSDB18-HQ"
    return (f"{what}: {len(s['train'])} training fragments {copies} "
            f"{len(data.train_set)} examples, {len(s['valid'])} validation, "
            f"{len(s['test'])} test fragments of 8.192 s at 16 kHz "
            f"({sum(f.silent_frames() for f in s['test'])} silent 1-s target frames in test"
            + (", gated" if p["gate_eval"] else "") + ")")


def figure2_caption(p: dict, data: StudyData, results: dict[str, TrainResult],
                    rows: pd.DataFrame | None = None) -> str:
    """Figure 2's caption; with the study's ``rows`` it also names the commits that produced them
    (a warning when rows of several commits are mixed)."""
    from dap.metrics import DEFINITIONS
    from dap.report import caption, commits_note

    steps = sorted({r.steps for r in results.values()})
    return caption("Figure 2 (paper 2): separation with side information of decreasing strength",
                   data=describe(p, data), profile=p["profile"], n_clips=len(data.splits["test"]),
                   iterations=f"training steps {', '.join(map(str, steps))}",
                   selection="model with the best validation L1 loss",
                   metrics={k: v for k, v in DEFINITIONS.items() if k in ("SDR", "PES", "EPS")},
                   deviations=deviations(p, data.source),
                   extra=[model_summary(p, results, data),
                          commits_note(rows) if rows is not None else ""])


def publish_figure2(table: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure2_medians.csv`` and ``figure2_medians.md``; return the markdown."""
    from dap.report import write_table

    md = markdown_summary(table, caption_text)
    write_table(table, folder, "figure2_medians", md)
    return md


def publish_comparisons(rows: pd.DataFrame, folder: str | Path, configurations=EVALUATED) -> str:
    """Write ``figure2_comparisons.csv`` / ``.md`` (:func:`comparison_table`); return the markdown."""
    from dap.report import write_table

    table = comparison_table(rows, configurations)
    md = markdown_comparisons(table)
    write_table(table, folder, "figure2_comparisons", md)
    return md


#: The paired comparisons of Figure 2's table: (configurations, versus, metric).
COMPARISONS = (("trained", "constant-mask", "L1"), ("trained", "constant-mask", "SDR"),
               ("informed", "BL1", "SDR"), ("informed", "BL2", "SDR"),
               ("informed", "BL1", "PES"), ("informed", "BL2", "PES"))


def comparison_table(rows: pd.DataFrame, configurations=EVALUATED) -> pd.DataFrame:
    """Paired per-fragment comparisons (:func:`beats_reference`) of :data:`COMPARISONS`:
    every evaluated configuration against the constant mask, every informed one against BL1 and
    BL2. ``mean`` > 0 means the configuration is better; ``better`` says whether the interval
    excludes zero on the better side (needs n >= 2)."""
    present = set(rows["design"])
    out = []
    for which, versus, metric in COMPARISONS:
        for c in configurations:
            if c not in present or versus not in present or c == versus:
                continue
            if which == "informed" and c in ("BL1", "BL2"):
                continue
            res = beats_reference(rows, c, versus, metric)
            if res["n"]:
                out.append({"configuration": c, "versus": versus, "metric": metric, **res,
                            "better": bool(res["low"] > 0)})
    return pd.DataFrame(out, columns=["configuration", "versus", "metric", "n", "mean", "low",
                                      "high", "wins", "better"])


def markdown_comparisons(table: pd.DataFrame) -> str:
    """The comparison table as markdown (differences signed so that > 0 = configuration better)."""
    lines = ["| Config | versus | metric | n | mean gain [95 % CI] | fragments better | CI > 0 |",
             "|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        lines.append(f"| {r['configuration']} | {r['versus']} | {r['metric']} | {r['n']} | "
                     f"{r['mean']:+.4g} [{_fmt(r['low'], 4)}, {_fmt(r['high'], 4)}] | "
                     f"{r['wins']} of {r['n']} | {'yes' if r['better'] else 'no'} |")
    return ("Paired comparisons over the same test fragments: gain = versus minus configuration "
            "for L1 and PES (lower is better), configuration minus versus for SDR; percentile-"
            "bootstrap 95 % interval of the mean gain over fragments.\n\n" + "\n".join(lines) + "\n")


def figure2_metrics(table: pd.DataFrame, results: dict[str, TrainResult] | None = None,
                    data: StudyData | None = None) -> dict:
    """Named numbers for ``metrics.json``: medians per configuration, alignment of M2 / A3.1,
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
    variants = [("", results)]
    if p["guide_weight"] and p["compare_unguided"]:
        # the faithful attention (no guidance) beside the guided one, trained the same way
        unguided = train_configurations({**p, "guide_weight": 0.0}, data, folder,
                                        _trained_needed(configs), reuse_from=reuse,
                                        progress=progress)
        variants.append((UNGUIDED, unguided))
        results = {**results, **{c + UNGUIDED: r for c, r in unguided.items()}}
    shown = pick_fragment(data.test_set, p.get("clip_id"))
    examples, records = [], []
    for suffix, trained in variants:
        for c in configs:
            result = trained[EVALUATIONS[c]]
            for i in range(len(data.test_set)):
                ex = data.test_set[i]
                side = fixed_side_info(side_kind(c), ex, p["seed"], **result.settings.side_options())
                sep = separate(result.model, ex, side, device=pick_device(),
                               mask_padding=result.settings.mask_padding)
                scores = alignment_metrics(sep.attention, side, result.settings.mask_padding)
                records.append({"configuration": c + suffix, "clip_id": ex.id, **scores})
                if i == shown:
                    examples.append(AttentionExample(c + suffix, ex.id, sep.attention, side,
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
                            "within 3 steps": "the same with the argmax at most 3 steps from the "
                            "true step",
                            "segment accuracy": "fraction of frames whose argmax lies in the "
                            "frame's own run of equal activity (fragments with >= 2 runs)"},
                   deviations=deviations(p, data.source),
                   extra=[model_summary(p, results, data)]
                   + ([f"Rows marked{UNGUIDED} are the same configurations trained without the "
                       "guided-attention term: the paper's attention as written."]
                      if any(c.endswith(UNGUIDED) for c in results) else []))


def alignment_table(alignment: pd.DataFrame) -> pd.DataFrame:
    """Per configuration over the test fragments: the mean of each alignment measure with its
    bootstrap 95 % interval, the mean chance level and the content-blind aligner's mean."""
    out = []
    for c, g in alignment.groupby("configuration", sort=False):
        rec = {"configuration": c, "n_fragments": int(len(g))}
        for m in ALIGNMENT_METRICS:
            v = g[m].dropna() if m in g else pd.Series(dtype=float)
            rec[m] = float(v.mean()) if len(v) else np.nan
            rec[f"{m}_n"] = int(len(v))
            rec[f"{m}_low"], rec[f"{m}_high"] = bootstrap_interval(v.to_numpy())
            for ref in ("chance", "proportional"):
                key = f"{ref}_{m}"
                rec[key] = float(g[key].mean()) if key in g and g[key].notna().any() else np.nan
        out.append(rec)
    return pd.DataFrame(out)


def publish_figure3(alignment: pd.DataFrame, folder: str | Path, caption_text: str) -> str:
    """Write ``figure3_alignment.csv`` / ``.md`` (alignment per configuration with intervals)."""
    from dap.report import write_table

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
            cells.append(f"{_fmt(r[f'chance_{m}'], 3)} / {_fmt(r[f'proportional_{m}'], 3)}")
        cells.append(_fmt(r["alignment_distance"], 1))
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nMeans over test fragments; 95 % CI: percentile bootstrap over fragments. chance: the "
            "exact expected score of a uniformly random argmax over the attendable steps (content "
            "steps, the padding being masked); content-blind: frame n -> content step floor(n K / N), "
            "which knows where the padding is but not the content (exact for M2 / A1). Segment "
            "accuracy counts only fragments whose activity has at least two runs.\n")
    md = f"{caption_text}\n\n" + "\n".join(lines) + "\n" + note
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
