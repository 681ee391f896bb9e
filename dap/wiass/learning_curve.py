"""Paper 2's learning curve: what the unguided attention and the informed SDR gain do as training
grows (docs/wiass.md, "Learning curve").

One training per configuration runs to the largest budget; at every budget on the way the best model
by validation loss *so far* is scored on the test split. Because every random draw of a training is
fixed by its seed and nothing in it depends on the step budget, that model is the one a training with
``max_steps`` = the budget would have kept: the curve costs one training, not one per budget. The
trainings resume from their checkpoints, so a later call with a larger last budget extends the curve.

Rows (``rows.csv`` of the output folder, tidy like every study's): one per (budget, configuration,
test fragment, metric); ``iterations`` holds the budget, ``design`` the configuration. Metrics: SDR
(BSS Eval, median over 1-s frames) and, for attention models, the alignment measures with their
chance and content-blind levels on the same fragment.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from dap.claims.paired_test import paired_test
from dap.core.provenance import provenance
from dap.core.store import ResultStore, fit_id
from dap.engine.fit import pick_device
from dap.wiass.configurations import fixed_side_info, side_kind
from dap.wiass.evaluate import PRECISION, TASK, alignment_metrics, row_stamp, separate, separation_metrics
from dap.wiass.study import model_folder, train_settings
from dap.wiass.study_data import load_study_data
from dap.wiass.train import load_best, train

#: The curve's configurations: the two attention models of Figure 3, and BL2 for M2 - BL2's SDR.
CURVE_CONFIGURATIONS = ("M2", "A3.1", "BL2")
#: The trainings' epoch limit: never reached, the budgets stop them.
UNBOUNDED_EPOCHS = 10 ** 6
#: Alignment measures shown per budget and configuration (their chance / content-blind levels come with
#: them); M2's side information has the mixture's length, so its segment accuracy repeats its exact one.
ALIGNMENT = {"M2": ("alignment_accuracy",), "A3.1": ("alignment_accuracy", "segment_accuracy")}


def learning_curve(p, budgets, folder: str | Path, configurations=CURVE_CONFIGURATIONS,
                   progress: bool = True, show=print) -> pd.DataFrame:
    """Train each of ``configurations`` under settings ``p`` (guided attention switched off: the
    paper's attention) up to ``max(budgets)`` steps, scoring the best-so-far model on the test split
    at every budget. Budgets already scored in ``folder`` are skipped.

    Args:
        p: resolved settings of notebook 07 (:class:`dap.config.notebook_settings.WiassSettings`).
        budgets: optimisation-step budgets; each a whole number of epochs (a multiple of
            ``ceil(training examples / batch_size)``: the model is validated, and the best one kept,
            at the end of an epoch).
        folder: where the models (``models/``) and the rows (``rows.csv``) go.
        configurations: trained configurations (``M2``, ``A3.1``, ``BL2``, ...).
        show: called with one line per budget and configuration.

    Returns:
        The rows of every (budget, configuration, fragment) scored so far in ``folder``.
    """
    budgets = sorted(int(b) for b in budgets)
    if not budgets or budgets[0] < 1:
        raise ValueError(f"budgets must be positive step counts, got {budgets}")
    data = load_study_data(p, "embedded")
    per_epoch = -(-len(data.train_set) // p.batch_size)
    if any(b % per_epoch for b in budgets):
        raise ValueError(f"every budget must be a multiple of the epoch length ({per_epoch} steps: "
                         f"{len(data.train_set)} examples, batch {p.batch_size}); got {budgets}")
    # No budget in the settings: the trainings stop only where a call asks them to (the models' ids,
    # and so their folders, stay the same when a later call asks for more steps).
    p = p.replace(guide_weight=0.0, max_steps=None, epochs=UNBOUNDED_EPOCHS, patience=None)
    folder = Path(folder)
    store = ResultStore(folder)
    for configuration in configurations:
        settings = train_settings(p, configuration, data.source)
        where = model_folder(folder, settings)
        done = _trained_steps(where)
        for budget in budgets:
            if _scored(store, settings, budget, data.test_set):
                continue
            if budget < done:
                raise ValueError(f"{configuration}: budget {budget} was not scored and its training is "
                                 f"already at step {done}; use a new folder to score it")
            result = train(settings, data.train_set, data.valid_set, where, progress=progress,
                           stop_after_steps=budget - done)
            done = result.steps
            if done < budget:
                raise RuntimeError(f"{configuration}: the training stopped at step {done}, before the "
                                   f"budget {budget} ({result.status})")
            model, record = load_best(where, pick_device())
            start = time.time()
            _score(store, model, settings, record, configuration, budget, data.test_set, p)
            show(f"{configuration}: budget {budget} (trained {done} steps, best at step "
                 f"{record.get('step')}), scored in {time.time() - start:.0f} s")
    return store.rows


def _trained_steps(where: Path) -> int:
    """Optimisation steps the training in ``where`` has done (0 if none)."""
    last = where / "last.pt"
    return int(torch.load(last, map_location="cpu", weights_only=False)["state"]["global_step"]) \
        if last.exists() else 0


def _curve_id(settings, budget: int, clip_id: str) -> str:
    """The fit id of one (model, budget, fragment) score; the models are loaded on pick_device()."""
    return fit_id({"task": TASK, "curve": settings.id, "budget": budget, "clip_id": clip_id,
                   **row_stamp(pick_device())})


def _scored(store: ResultStore, settings, budget: int, test_set) -> bool:
    return all(store.has(_curve_id(settings, budget, f.id)) for f in test_set.fragments)


def _score(store: ResultStore, model, settings, record: dict, configuration: str, budget: int,
           test_set, p) -> None:
    """Rows of ``model`` (best up to ``budget``) on every test example, unless already stored."""
    kind = side_kind(configuration)
    for i in range(len(test_set)):
        example = test_set[i]
        fid = _curve_id(settings, budget, example.id)
        if store.has(fid):
            continue
        side = fixed_side_info(kind, example, p.seed, **settings.side_options())
        sep = separate(model, example, side, mask_padding=settings.mask_padding)
        values = {"SDR": separation_metrics(example.fragment.target, example.fragment.accompaniment,
                                            sep)["SDR"]}
        values.update(alignment_metrics(sep.attention, side, settings.mask_padding))
        base = {"fit_id": fid, "task": TASK, "dataset": "stems", "source": p.corpus,
                "clip_id": example.id, "design": configuration, "seed": p.seed, "profile": p.profile,
                "selection": "best-validation", "iterations": budget,
                "best_iteration": record.get("step"), "precision": PRECISION, "status": "ok",
                "error": "", "model_id": settings.id, **provenance(), **row_stamp(pick_device())}
        store.add([{**base, "metric": k, "value": float(v)} for k, v in values.items()])


def curve_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per budget: medians over the test fragments of M2's and BL2's SDR, of M2 - BL2 SDR
    (paired per fragment; n fragments) and of M2's and A3.1's alignment (with chance and
    content-blind levels).

    Args:
        rows: :func:`learning_curve`'s rows.

    Returns:
        Columns ``steps``, medians ``M2 SDR (dB)`` and ``BL2 SDR (dB)``, ``n``, ``M2 - BL2 SDR (dB)``,
        ``p (M2 > BL2)`` (exact one-sided signed-rank test per budget, uncorrected: a description
        of the curve, not a claim), ``M2 - BL2 > 0 (fragments)``, then per
        attention configuration and measure ``<config> <measure>`` with ``chance`` and
        ``content-blind`` levels.
    """
    ok = rows[rows["status"] == "ok"]
    wide = ok.pivot_table(index=["iterations", "clip_id"], columns=["design", "metric"],
                          values="value", aggfunc="first")
    lines = []
    for steps, block in wide.groupby(level=0):
        line = {"steps": int(steps)}
        for config in ("M2", "BL2"):
            if (config, "SDR") in block:
                line[f"{config} SDR (dB)"] = round(float(block[(config, "SDR")].median()), 2)
        if ("M2", "SDR") in block and ("BL2", "SDR") in block:
            gain = (block[("M2", "SDR")] - block[("BL2", "SDR")]).dropna()
            test = paired_test(gain.to_numpy())
            line.update({"n": len(gain), "M2 - BL2 SDR (dB)": round(float(gain.median()), 2),
                         "M2 - BL2 > 0 (fragments)": f"{int((gain > 0).sum())}/{len(gain)}",
                         "p (M2 > BL2)": float(f"{test.p_greater:.2g}")})
        for config, measures in ALIGNMENT.items():
            for measure in measures:
                for label, column in ((f"{config} {measure}", measure),
                                      (f"{config} {measure} chance", f"chance_{measure}"),
                                      (f"{config} {measure} content-blind", f"proportional_{measure}")):
                    if (config, column) in block:
                        line[label] = round(float(block[(config, column)].median()), 3)
        lines.append(line)
    return pd.DataFrame(lines)
