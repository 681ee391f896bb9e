"""Any registered task as a study: the grid of fits, its baselines and a table, with no code of its own.

A task registered with :func:`dap.tasks.register_task` (and baselines with
:func:`dap.baselines.register_baseline`) runs here over the designs and clips of a notebook's
:class:`~dap.config.notebook_settings.FitSettings`: the same set-up as the paper's studies
(:func:`~dap.studies.common.study_setup`, fit ids, resume, workers), the same row contract, and a
markdown table of every design and baseline (:func:`task_table`). docs/extending.md uses it.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from dap.config.notebook_settings import FitSettings
from dap.core.seeds import derive_seed
from dap.core.store import ResultStore
from dap.data import Clip
from dap.engine.grid import Grid, run_grid
from dap.report.tables import ours_only_table
from dap.studies.common import (BASELINE_FILE, load_normalised, registered_baselines, run_baselines, study_setup,
                                with_observation)
from dap.tasks import Task, get_task


def observed_clips(task: Task, p: FitSettings, dataset: str, source: str = "embedded", root=None) -> list[Clip]:
    """The clips of ``dataset`` (peak-normalised, cut to ``p.max_samples``), each carrying the task's
    observation of it in ``meta`` (``observation``, ``context``, ``observation_extra``), drawn from
    a seed derived from ``p.seed`` and the clip."""
    clips = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)
    observations = [task.corrupt(c.audio, derive_seed(p.seed, c.dataset, c.id)) for c in clips]
    return [with_observation(c, o.observed, o.extra, o.context) for c, o in zip(clips, observations)]


def task_study(store: ResultStore, p: FitSettings, task: str, source: str = "embedded", root=None,
               progress=print) -> pd.DataFrame:
    """Fit every design of ``p.designs`` to every clip of ``p.datasets`` corrupted by the registered
    ``task``; one row per fit, selection rule and metric (the rows of exactly this grid)."""
    t = get_task(task)
    setup = study_setup(p, t.name)
    run_fit = partial(_restore_clip, t, cfg=setup.config, seed=p.seed, prior_opts=setup.prior_opts)
    rows = [run_grid(store, setup.grid, observed_clips(t, p, dataset, source, root), list(p.designs), run_fit,
                     partial(_evaluate_clip, t), progress=progress, **setup.parallel())
            for dataset in p.datasets]
    return pd.concat(rows, ignore_index=True)


def task_baselines(store: ResultStore, p: FitSettings, task: str, source: str = "embedded", root=None,
                   progress=print) -> pd.DataFrame:
    """Every baseline registered for ``task`` on the clips of :func:`task_study`, scored by the same
    metrics; rows go to ``baselines.csv`` beside ``store``'s rows. Returns them."""
    t = get_task(task)
    grid = Grid(task=t.name, settings={"max_samples": p.max_samples}, profile=p.profile, seed=p.seed)
    out = ResultStore(store.folder, BASELINE_FILE)
    methods = registered_baselines(t.name, lambda c: (c.meta["observation"], c.audio, c.meta["context"]))
    rows = [run_baselines(out, grid, observed_clips(t, p, dataset, source, root), methods,
                          partial(_evaluate_clip, t), progress=progress)
            for dataset in p.datasets]
    return pd.concat(rows, ignore_index=True)


def task_table(task: str, rows: pd.DataFrame, baselines: pd.DataFrame | None = None, selection: str = "last") -> str:
    """Markdown: mean ± std (n) of the task's metrics per design under ``selection``, then the
    baselines (not ranked)."""
    metrics = get_task(task).metrics
    table = ours_only_table(rows, metrics, selection)
    if baselines is not None and len(baselines):
        table += "\nBaselines (not ranked):\n\n" + ours_only_table(baselines, metrics, "none")
    return table


def _restore_clip(task: Task, clip: Clip, design: str, cfg, seed: int, prior_opts: dict | None):
    """One fit of a clip from :func:`observed_clips` (module level, so worker processes can run it)."""
    result = task.restore(clip.meta["observation"], design, cfg, seed=derive_seed(seed, clip.dataset, clip.id),
                          clean=clip.audio, prior_opts=prior_opts, **clip.meta["context"])
    result.extra.update(clip.meta["observation_extra"])
    return result


def _evaluate_clip(task: Task, clip: Clip, estimate: np.ndarray) -> dict[str, float]:
    """The task's metrics of ``estimate`` ``(S, L)`` against the clip."""
    return task.evaluate(clip.audio, estimate, **clip.meta["context"])
