"""Evaluation of paper 2 (sections 2, 3 and 5): separate, score, and store tidy rows.

Separation (section 2): the predicted normalised magnitude is multiplied by the mixture's scale
(:func:`dap.wiass.data.normalised_magnitudes`), combined with the **mixture phase**, and inverted
with :func:`dap.wiass.data.wiass_istft`; the accompaniment estimate is ``mixture - target
estimate``.
Frames the model predicts as exactly zero (ReLU output) stay exactly zero after the inverse, so
"predicted silence" in the EPS sense is reachable.

Scores per fragment (the paper's per-song numbers, here per 8.192-s fragment):

* ``SDR``, ``SIR``, ``SAR`` of the target: BSS Eval v4 (:func:`dap.metrics.bss_eval`) on 1-s
  non-overlapping windows, the **median over windows** that are defined (windows where a reference
  or estimate is silent are NaN and skipped, which is the paper's point in section 3); NaN when no
  window is defined. ``SDR_accompaniment`` etc. for the accompaniment; ``n_windows`` counts the
  defined target windows.
* ``PES``, ``EPS`` (1-s frames, "silent" = all samples exactly zero; :func:`dap.metrics.pes`,
  :func:`dap.metrics.eps`), with ``n_pes_frames`` and ``n_eps_frames`` (how many frames each
  averages over; NaN PES / EPS when there are none);
* ``L1``: mean absolute error of the normalised magnitude, the training loss's units.
* for informed configurations with meaningful side information (not BL1 / BL2):
  ``alignment_accuracy`` (fraction of frames whose attention argmax is the true step),
  ``alignment_within_k`` (argmax within 3 steps of the true step), ``alignment_distance`` (mean
  |argmax - true step|, in steps) over frames that have a true step, and ``segment_accuracy``
  (argmax inside the frame's own run; NaN on a fragment whose activity is one run), each with its
  ``chance_*`` level and the content-blind ``proportional_*`` aligner's score on the same fragment
  (:mod:`dap.wiass.references`).

Rows follow :data:`dap.core.store.ROW_COLUMNS`: ``task="wiass"``, ``dataset="stems"``, ``design`` =
the evaluated configuration (BL1 ... A3.1, A3.2), ``selection="best-validation"``,
``iterations`` = training steps, ``best_iteration`` = best epoch; extra columns ``model_id``,
``trained_configuration``, ``hidden``, ``epochs_trained``. One evaluation (fragment x
configuration) is one fit id of :class:`dap.core.store.ResultStore`, so a rerun skips what is stored.
Every fit id and row of paper 2 carries :func:`row_stamp`: the code's fingerprint and the precision class.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dap import metrics
from dap.core.audio import SAMPLE_RATE
from dap.core.device import precision_class
from dap.core.fingerprint import PAPER2, code_fingerprint
from dap.core.provenance import provenance
from dap.core.store import ResultStore, fit_id
from dap.wiass.configurations import fixed_side_info, side_kind
from dap.wiass.data import wiass_istft, wiass_stft
from dap.wiass.examples import Example, SpectrogramSet
from dap.wiass.model import InformedSeparator
from dap.wiass.references import (REFERENCES, alignment_references, alignment_scores,
                                  reference_magnitude)
from dap.wiass.side_info import SideInfo
from dap.wiass.train_settings import TrainResult

#: BSS Eval window and PES / EPS frame: 1 s at 16 kHz.
WINDOW = SAMPLE_RATE
TASK = "wiass"
SELECTION = "best-validation"
SEPARATION_METRICS = ("SDR", "SIR", "SAR", "PES", "EPS", "L1")
ALIGNMENT_METRICS = ("alignment_accuracy", "alignment_within_k", "alignment_distance",
                     "segment_accuracy")
#: Paper 2 trains and evaluates without autocast.
PRECISION = "fp32"


def row_stamp(device) -> dict:
    """``code`` (paper 2's fingerprint, :mod:`dap.core.fingerprint`) and ``precision_class`` of a result
    computed on ``device``: part of every paper-2 fit id and row (docs/reference.md).

    Args:
        device: where the model was trained and is evaluated (a torch device or its name).

    Returns:
        ``{"code": ..., "precision_class": ...}``.
    """
    return {"code": code_fingerprint(PAPER2), "precision_class": precision_class(PRECISION, device)}


@dataclass
class Separation:
    """One separated fragment.

    target, accompaniment: float32 ``(L,)`` estimates; target_mag: the predicted normalised
    magnitude ``(N, F)``; attention ``(N, M)`` or None (BL1); side: the side information used.
    """

    target: np.ndarray
    accompaniment: np.ndarray
    target_mag: np.ndarray
    attention: np.ndarray | None
    side: SideInfo | None


@torch.no_grad()
def separate(model: InformedSeparator, example: Example, side: SideInfo | None,
             device: torch.device | str | None = None, mask_padding: bool = True) -> Separation:
    """Separate one example (which must carry its :class:`~dap.wiass.data.Fragment`).

    ``mask_padding``: exclude the side information's padding from the attention (as the model
    was trained: ``TrainSettings.mask_padding``)."""
    if example.fragment is None:
        raise ValueError(f"example {example.id} has no waveform fragment to reconstruct")
    if model.informed and side is None:
        raise ValueError("an informed model needs side information")
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.eval()
    if model.informed:
        side_t = torch.from_numpy(side.values[None]).to(device)
        mask = torch.from_numpy(side.mask[None]).to(device) if mask_padding else None
        pred, att = model(example.mixture_mag[None].to(device), side_t, side_mask=mask)
    else:
        pred, att = model(example.mixture_mag[None].to(device))
    return from_magnitude(example, pred[0].float().cpu(),
                          None if att is None else att[0].cpu().numpy(), side)


def from_magnitude(example: Example, target_mag: torch.Tensor, attention=None,
                   side: SideInfo | None = None) -> Separation:
    """Waveform estimates from a normalised target magnitude ``(N, F)`` with the mixture phase
    (used for the models and for the reference levels: silence, constant mask, oracle)."""
    mag = target_mag * example.scale  # back to the signal's scale
    mixture = example.fragment.mixture
    spec = wiass_stft(mixture)
    # Mixture phase; where the mixture bin is exactly zero its phase is undefined: use 0.
    unit = torch.where(spec.abs() > 0, spec / spec.abs().clamp_min(1e-30), torch.ones_like(spec))
    target = wiass_istft(mag * unit, length=mixture.shape[0]).numpy().astype(np.float32)
    return Separation(target, (mixture - target).astype(np.float32), target_mag.numpy(),
                      attention, side)


def _median(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def separation_metrics(target: np.ndarray, accompaniment: np.ndarray, sep: Separation,
                       window: int = WINDOW) -> dict[str, float]:
    """SDR / SIR / SAR (median over 1-s windows), PES, EPS and their frame counts."""
    out: dict[str, float] = {}
    refs = np.stack([target, accompaniment])
    ests = np.stack([sep.target, sep.accompaniment])
    try:
        bss = metrics.bss_eval(refs, ests, window=window, on_silent="nan")
    except metrics.UndefinedMetric:
        n = (target.shape[0] - window) // window + 1
        bss = {k: np.full((2, n), np.nan) for k in ("SDR", "SIR", "SAR")}
    for name in ("SDR", "SIR", "SAR"):
        out[name] = _median(bss[name][0])
        out[f"{name}_accompaniment"] = _median(bss[name][1])
    out["n_windows"] = int(np.sum(~np.isnan(bss["SDR"][0])))
    out["PES"] = metrics.pes(target, sep.target, frame=window)
    out["EPS"] = metrics.eps(target, sep.target, frame=window)
    counts = metrics.pes_eps_counts(target, sep.target, frame=window)
    out.update({k: int(v) for k, v in counts.items() if k != "n_eps_frames_incl_silent_targets"})
    return out


def magnitude_l1(sep: Separation, example: Example) -> float:
    """Mean absolute error of the predicted normalised magnitude (the training loss's units)."""
    return float(np.mean(np.abs(sep.target_mag - example.target_mag.numpy())))


def alignment_metrics(attention: np.ndarray | None, side: SideInfo | None,
                      mask_padding: bool = True) -> dict[str, float]:
    """Alignment measures of the attention against the side information's truth, with their
    chance and content-blind reference levels on the same fragment ({} if no side information;
    see :mod:`dap.wiass.references`)."""
    if attention is None or side is None or side.kind == "ones":
        return {}
    return {**alignment_scores(attention, side), **alignment_references(side, mask_padding)}


def evaluation_id(result: TrainResult, evaluation: str, example_id: str, seed: int) -> str:
    """Fit id of one evaluation: the model, the evaluated configuration, the fragment, the seed."""
    return fit_id({"task": TASK, "model": result.settings.id, "evaluation": evaluation,
                   "clip_id": example_id, "seed": seed, "window": WINDOW, "shift": 100,
                   **row_stamp(result.device)})


def evaluate_configuration(store: ResultStore, result: TrainResult, evaluation: str,
                           test_set: SpectrogramSet, seed: int, profile: str, source: str,
                           progress: bool = True) -> pd.DataFrame:
    """Score ``result``'s model as configuration ``evaluation`` on every test example.

    ``evaluation`` is the trained configuration itself or ``"A3.2"`` for the A3.1 model with side
    information circularly shifted by 100 steps. Evaluations already in ``store`` are skipped.
    Returns the rows of this configuration (stored and new).
    """
    kind = side_kind(evaluation)
    if evaluation == "A3.2" and result.settings.configuration != "A3.1":
        raise ValueError("A3.2 evaluates the A3.1 model; got a model of "
                         f"{result.settings.configuration}")
    if evaluation != "A3.2" and evaluation != result.settings.configuration:
        raise ValueError(f"configuration {evaluation} cannot use the model of "
                         f"{result.settings.configuration}")
    side_options = result.settings.side_options()
    fids = []
    items = range(len(test_set))
    if progress:
        items = tqdm(items, desc=f"evaluate {evaluation}", unit="fragment")
    for i in items:
        example = test_set[i]
        fid = evaluation_id(result, evaluation, example.id, seed)
        fids.append(fid)
        if store.has(fid):
            continue
        start = time.time()
        base = _base_row(result, evaluation, example, seed, profile, source, fid)
        try:
            side = fixed_side_info(kind, example, seed, **side_options)
            sep = separate(result.model, example, side,
                           mask_padding=result.settings.mask_padding)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN medians are expected
                values = separation_metrics(example.fragment.target,
                                            example.fragment.accompaniment, sep)
            values["L1"] = magnitude_l1(sep, example)
            values.update(alignment_metrics(sep.attention, side, result.settings.mask_padding))
            status, error = "ok", ""
        except Exception as exc:  # noqa: BLE001 - recorded as a failed row, the study goes on
            values, status, error = {"SDR": float("nan")}, "failed", f"{type(exc).__name__}: {exc}"
        seconds = round(time.time() - start, 3)
        store.add([{**base, "metric": k, "value": float(v), "seconds": seconds, "status": status,
                    "error": error} for k, v in values.items()])
    rows = store.rows
    return rows[rows["fit_id"].isin(fids)].reset_index(drop=True)


def _base_row(result: TrainResult, evaluation: str, example: Example, seed: int, profile: str,
              source: str, fid: str) -> dict:
    s = result.settings
    return {"fit_id": fid, "task": TASK, "dataset": "stems", "source": source,
            "clip_id": example.id, "design": evaluation, "seed": seed, "profile": profile,
            "selection": SELECTION, "iterations": result.steps, "best_iteration": result.best_epoch,
            "device": result.device, "precision": PRECISION, **provenance(), **row_stamp(result.device),
            "model_id": s.id, "trained_configuration": s.configuration, "hidden": s.hidden,
            "epochs_trained": result.epochs}


def evaluate_references(store: ResultStore, test_set: SpectrogramSet, mask: torch.Tensor,
                        seed: int, profile: str, source: str, mask_id: str) -> pd.DataFrame:
    """Score the reference estimates (:data:`dap.wiass.references.REFERENCES`) on every test
    example with the models' metrics; rows have ``design`` = the reference's name and
    ``selection="reference"``. ``mask`` is the fitted constant mask ``(F,)`` and ``mask_id`` names
    what it was fitted on (part of the fit id). Stored evaluations are skipped."""
    fids = []
    stamp = row_stamp("cpu")  # the reference estimates are computed on the CPU
    for name in REFERENCES:
        for i in range(len(test_set)):
            example = test_set[i]
            fid = fit_id({"task": TASK, "reference": name, "clip_id": example.id, "seed": seed,
                          "window": WINDOW, "mask": mask_id if name == "constant-mask" else None, **stamp})
            fids.append(fid)
            if store.has(fid):
                continue
            start = time.time()
            sep = from_magnitude(example, reference_magnitude(name, example, mask))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN medians are expected
                values = separation_metrics(example.fragment.target,
                                            example.fragment.accompaniment, sep)
            values["L1"] = magnitude_l1(sep, example)
            base = {"fit_id": fid, "task": TASK, "dataset": "stems", "source": source,
                    "clip_id": example.id, "design": name, "seed": seed, "profile": profile,
                    "selection": "reference", "iterations": 0, "best_iteration": 0,
                    "device": "cpu", "precision": PRECISION, **provenance(), **stamp}
            seconds = round(time.time() - start, 3)
            store.add([{**base, "metric": k, "value": float(v), "seconds": seconds, "status": "ok",
                        "error": ""} for k, v in values.items()])
    rows = store.rows
    return rows[rows["fit_id"].isin(fids)].reset_index(drop=True)
