"""Paper 2's study: train every configuration a profile asks for and evaluate it (notebooks 07, 08).

* :func:`figure2_study` trains every configuration (BL1, BL2, M1, M2, A1, A2, A3.1; resumable
  checkpoints under ``results/07_.../models/<configuration>-<settings id>/``) and evaluates them
  plus A3.2 (the A3.1 model with side information shifted by 100 steps) on the test fragments:
  tidy rows in ``rows.csv``. :mod:`dap.wiass.tables` turns the rows into the table of medians per
  configuration (the boxes' middle lines of the paper's Figure 2) and the paired comparisons;
  :mod:`dap.wiass.figure2` captions and publishes them.
* :func:`figure3_study` reuses 07's trained models when they exist (same settings id), otherwise
  trains what it needs into its own folder, and returns the attention of M2 and A3.1 (and A3.2)
  on one test fragment plus the alignment accuracy over all test fragments
  (:mod:`dap.wiass.figure3` tabulates, captions and publishes them).

A resolved profile ``p`` (see :mod:`dap.config.profiles`) carries: ``seed``, ``configurations``, model size
``hidden`` / ``n_layers``, training ``lr``, ``weight_decay``, ``batch_size``, ``epochs``,
``patience``, ``max_steps``, data ``n_train``, ``n_valid``, ``n_test``, ``copies``, ``gain_db``,
``pitch``, ``circular_shift``, side information ``side_length``, ``activity_threshold``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dap.core.files import results_root
from dap.core.provenance import provenance
from dap.core.store import ResultStore, fit_id
from dap.engine.fit import pick_device
from dap.wiass.captions import describe, model_summary
from dap.wiass.configurations import EVALUATIONS, fixed_side_info, models_needed, side_kind
from dap.wiass.examples import SpectrogramSet
from dap.wiass.evaluate import (TASK, alignment_metrics, evaluate_configuration, evaluate_references,
                                row_stamp, separate)
from dap.wiass.figure2 import (FIGURE2, figure2_caption, figure2_checks, publish_comparisons,
                               publish_figure2, publish_side_by_side)
from dap.wiass.figure3 import (FIGURE3, UNGUIDED, AttentionExample, figure3_caption,
                               figure3_checks, model_sources, publish_figure3)
from dap.wiass.references import silence_loss
from dap.wiass.study_data import StudyData, data_settings, load_study_data
from dap.wiass.tables import summary_table
from dap.wiass.train_settings import TrainResult, TrainSettings
from dap.wiass.train import is_trained, train

#: Rows of the embedded test stems scored beside a generated corpus (not ``rows.csv``).
EMBEDDED_ROWS = "rows_embedded.csv"
#: Notebooks 07 and 08's entry point: the names they call as ``study.<name>``, this module's own
#: and those imported above from the modules that publish the figures.
__all__ = [
    "FIGURE2", "FIGURE3", "figure2_study", "figure3_study", "describe", "model_summary",
    "silence_loss", "summary_table", "figure2_caption", "publish_figure2", "publish_comparisons",
    "figure2_checks", "publish_side_by_side", "figure3_caption", "publish_figure3", "figure3_checks",
    "model_sources",
]


def train_settings(p: dict, configuration: str, source: str) -> TrainSettings:
    """The :class:`TrainSettings` of ``configuration`` under profile ``p``."""
    return TrainSettings(configuration=configuration, hidden=p.hidden, n_layers=p.n_layers,
                         lr=p.lr, weight_decay=p.weight_decay, batch_size=p.batch_size,
                         epochs=p.epochs, patience=p.patience, max_steps=p.max_steps,
                         side_length=p.side_length,
                         activity_threshold=p.activity_threshold, seed=p.seed,
                         decay=p.decay,
                         mask_padding=p.mask_padding, output_leak=p.output_leak,
                         guide_weight=p.guide_weight, data=data_settings(p, source))


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


def figure2_study(store: ResultStore, p: dict, source: str = "embedded", root=None,
                  progress: bool = True) -> tuple[pd.DataFrame, StudyData, dict[str, TrainResult]]:
    """Train every configuration of ``p.configurations`` and evaluate it on the test split.

    Returns (rows of this study, the data, the training results per trained configuration).
    """
    data = load_study_data(p, source, root)
    results = train_configurations(p, data, store.folder, models_needed(p.configurations),
                                   progress=progress)
    frames = [evaluate_configuration(store, results[EVALUATIONS[e]], e, data.test_set, p.seed,
                                     p.profile, data.source, progress=progress)
              for e in p.configurations]
    mask_id = fit_id(data_settings(p, data.source))
    frames.append(evaluate_references(store, data.test_set, data.constant_mask, p.seed,
                                      p.profile, data.source, mask_id))
    if data.embedded_test is not None:
        # the real stems, side by side; in their own rows file, so claims read one test set only
        side = ResultStore(store.folder, EMBEDDED_ROWS)
        data.embedded_rows = pd.concat(
            [evaluate_configuration(side, results[EVALUATIONS[e]], e, data.embedded_test, p.seed,
                                    p.profile, "embedded", progress=progress)
             for e in p.configurations]
            + [evaluate_references(side, data.embedded_test, data.constant_mask, p.seed,
                                   p.profile, "embedded", mask_id)], ignore_index=True)
    return pd.concat(frames, ignore_index=True), data, results


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
    """Attention of ``p.attention_configurations`` on one test fragment, and alignment over all.

    Models come from 07's folder when trained there with the same settings, else are trained into
    ``folder`` (08's). Returns (examples on the shown fragment, per-fragment alignment table with
    columns configuration / clip_id / metric..., data, training results).
    """
    folder = Path(folder) if folder is not None else results_root() / FIGURE3
    reuse = [results_root() / FIGURE2] if reuse_from is None else list(reuse_from)
    data = load_study_data(p, source, root)
    configs = list(p.attention_configurations)
    for c in configs:
        if side_kind(c) in (None, "ones"):
            raise ValueError(f"{c} has no meaningful side information to attend to")
    results = train_configurations(p, data, folder, models_needed(configs), reuse_from=reuse,
                                   progress=progress)
    variants = [("", results)]
    if p.guide_weight and p.compare_unguided:
        # the faithful attention (no guidance) beside the guided one, trained the same way
        unguided = train_configurations(p.replace(guide_weight=0.0), data, folder,
                                        models_needed(configs), reuse_from=reuse,
                                        progress=progress)
        variants.append((UNGUIDED, unguided))
        results = {**results, **{c + UNGUIDED: r for c, r in unguided.items()}}
    shown = pick_fragment(data.test_set, p.clip_id)
    examples, records = [], []
    for suffix, trained in variants:
        for c in configs:
            result = trained[EVALUATIONS[c]]
            for i in range(len(data.test_set)):
                ex = data.test_set[i]
                side = fixed_side_info(side_kind(c), ex, p.seed, **result.settings.side_options())
                sep = separate(result.model, ex, side, device=pick_device(),
                               mask_padding=result.settings.mask_padding)
                scores = alignment_metrics(sep.attention, side, result.settings.mask_padding)
                records.append({"configuration": c + suffix, "clip_id": ex.id, **scores})
                if i == shown:
                    examples.append(AttentionExample(c + suffix, ex.id, sep.attention, side,
                                                     ex.target_mag.numpy(), scores))
                store_alignment(ResultStore(folder), records[-1], result.settings.id, p, source)
    return examples, pd.DataFrame(records), data, results


def store_alignment(store: ResultStore, record: dict, model_id: str, p: dict, source: str) -> None:
    """Keep one fragment's alignment scores (with their chance and content-blind levels) as tidy
    rows in ``store`` (notebook 08's ``rows.csv``), so that the claims can test them per fragment.
    ``record``: ``{"configuration", "clip_id", <measure>: value, ...}``."""
    stamp = row_stamp(pick_device())  # where figure3_study separates
    fid = fit_id({"task": TASK, "model": model_id, "evaluation": "alignment", "clip_id": record["clip_id"],
                  "seed": p.seed, **stamp})
    if store.has(fid):
        return
    base = {"fit_id": fid, "task": TASK, "dataset": "stems", "source": source, "clip_id": record["clip_id"],
            "design": record["configuration"], "seed": p.seed, "profile": p.profile,
            "selection": "best-validation", "status": "ok", "error": "", **provenance(), **stamp}
    store.add([{**base, "metric": k, "value": float(v)} for k, v in record.items()
               if k not in ("configuration", "clip_id")])
