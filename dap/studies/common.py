"""Helpers shared by the studies: the set-up of a study from its settings, clip loading, captions,
the classical baselines.

The helpers read a study's settings (a :class:`dap.config.notebook_settings.FitSettings`) as attributes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from dap.baselines import baselines_for, get_baseline, timed
from dap.config.notebook_settings import FitSettings
from dap.core.audio import loudest_start, peak_normalise
from dap.core.device import NUMPY_PRECISION_CLASS, require_gpu_for_paper
from dap.core.errors import DapError
from dap.core.provenance import provenance
from dap.core.store import fit_id
from dap.data import Clip, load_clips
from dap.engine.audit_selection import audited
from dap.engine.fit import FitConfig
from dap.engine.grid import Grid, process_pool
from dap.priors import DESIGN_LABELS
from dap.report.tables import commits_note


def fit_config(p: FitSettings, **extra) -> FitConfig:
    """The engine settings of the settings ``p`` (``extra``: more :class:`dap.engine.fit.FitConfig` fields);
    the ``paper`` profile without a usable CUDA GPU stops here too (a notebook run outside
    run_all.sh), see dap.core.device.require_gpu_for_paper."""
    require_gpu_for_paper(p.profile)
    if p.oracle_patience is not None:
        extra = {**extra, "oracle_patience": p.oracle_patience,
                 "max_iterations": max(extra.get("max_iterations") or 0, p.oracle_cap or p.iterations)}
    return FitConfig(iterations=p.iterations, lr=p.lr, lr_step=p.lr_step, lr_gamma=p.lr_gamma,
                     precision=p.precision, **extra)


def fit_workers(p: FitSettings) -> int:
    """How many fits run at once: ``p.workers`` when set (> 0; on GPUs the worker processes are
    spread over them round-robin, :func:`dap.engine.grid.gpu_assignment`, so 2 x GPUs runs two fits per
    GPU); on a Dask cluster (``p.cluster``) one per GPU of this node (``local-cuda``) or per
    core (``local``), 4 SLURM jobs, 2 for a given scheduler; else one per GPU (one fit of the paper's
    size keeps a GPU busy: measure before running more, benchmarks/gpu_check.py) and 2 on a CPU with at
    least 2 cores (two single-threaded fits run more iterations per second than one two-threaded
    fit: results/reference/benchmarks.md)."""
    if p.workers:
        return int(p.workers)
    cluster = p.cluster
    if cluster == "local-cuda":
        return max(1, torch.cuda.device_count())
    if cluster == "local":
        return max(1, os.cpu_count() or 1)
    if cluster:
        return 4 if cluster == "slurm" else 2
    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def grid_executor(p: FitSettings):
    """The executor factory of :func:`dap.engine.grid.run_grid` for ``p.cluster``: worker processes on
    this machine when it is not set, else a Dask cluster (:func:`dap.engine.cluster.cluster_executor`)."""
    if not p.cluster:
        return process_pool
    from dap.engine.cluster import cluster_executor  # distributed: only where a cluster is asked for

    return cluster_executor(p.cluster)


def fit_settings(p: FitSettings) -> dict:
    """What, in ``p``, changes a fit's outcome: part of every fit id. The precision it resolves to
    and the device class are the grid's :meth:`~dap.engine.grid.Grid.stamp` (``precision: auto`` is
    bf16 on one machine, fp32 on another: their rows must not be taken for each other's)."""
    keys = ("iterations", "lr", "lr_step", "lr_gamma", "precision", "mismatched_istft", "max_samples")
    settings = {k: getattr(p, k) for k in keys}
    if p.oracle_patience is not None:  # absent when unset: the ids of fits without it stay as they were
        settings.update(oracle_patience=p.oracle_patience, oracle_cap=p.oracle_cap)
    return settings


@dataclass(frozen=True)
class StudySetup:
    """What a paper-1 study builds from its settings before it fits anything (:func:`study_setup`)."""

    grid: Grid                #: task, settings that identify a fit (its id), profile, seed
    config: FitConfig         #: the fit engine's settings
    prior_opts: dict | None   #: build_prior options of every fit (None: the paper's priors)
    workers: int = 1          #: fits at once (:func:`fit_workers`)
    executor: object = None   #: where they run (:func:`grid_executor`)

    def parallel(self) -> dict:
        """``run_grid``'s ``workers`` and ``executor`` arguments."""
        return {"workers": self.workers, "executor": self.executor}


def study_setup(p: FitSettings, task: str, settings: dict | None = None, **config) -> StudySetup:
    """The grid, engine settings and prior options of a paper-1 study under the settings ``p``.

    Every study (denoising, inpainting, separation, stopping) sets up the same way:
    ``grid.settings`` = :func:`fit_settings` + the task's own ``settings`` (noise level, masks, loss
    weights: whatever changes the outcome) + ``prior_opts`` when ``p`` sets it (smaller priors
    for tests and laptops; absent from the settings, hence from the fit ids, when it is not set);
    ``config`` = :func:`fit_config` with the ``config`` extra fields (the stopping study's cap).
    """
    grid_settings = {**fit_settings(p), **(settings or {})}
    prior_opts = p.prior_opts or None  # e.g. {"widths": (4, 8, 16)}
    if prior_opts:
        grid_settings["prior_opts"] = prior_opts
    return StudySetup(grid=Grid(task=task, settings=grid_settings, profile=p.profile, seed=p.seed),
                      config=fit_config(p, **config), prior_opts=prior_opts, workers=fit_workers(p),
                      executor=grid_executor(p))


def load_normalised(dataset: str, n: int, seed: int, source: str, root=None,
                    max_samples: int | None = None) -> list[Clip]:
    """``n`` clips of ``dataset``, peak-normalised to 1 as the authors did.

    ``max_samples``: clips longer than this keep their most energetic window of that length (the
    quick profile fits 0.512 s of each clip; a multiple of 256 samples keeps the
    spectrogram divisible by the priors' poolings).
    """
    clips = load_clips(dataset, n=n, seed=seed, source=source, root=root)
    for clip in clips:
        if max_samples is not None:
            clip.audio = loudest_window(clip.audio, max_samples)
        clip.audio = peak_normalise(clip.audio, name=f"{dataset}/{clip.id}")
    return clips


def with_observation(clip: Clip, observed: np.ndarray, extra: dict, context: dict | None = None) -> Clip:
    """A copy of ``clip`` that carries its corrupted observation ``(L,)``, what describes it
    (``extra``: stored in the fit's rows) and what the task needs besides (``context``) in ``meta``."""
    return replace(clip, meta={**clip.meta, "observation": observed, "observation_extra": extra,
                               "context": context or {}})


def loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample window of ``audio`` (L,) with the most energy, on a 1024-sample grid
    (deterministic; ``audio`` itself when it is not longer)."""
    if length <= 0:
        raise ValueError(f"max_samples must be positive, got {length}")
    if len(audio) <= length:
        return audio
    best = loudest_start(audio, length, 1024)
    return audio[best:best + length]


# ----------------------------------------------------------------------------- captions
_EMBEDDED_DATA = {
    "speech": "LJSpeech-like: Allison Smith voice prompts (Asterisk, CC-BY-SA-3.0), 2.048 s windows",
    "digits": "SC09-like: spoken digits 0-9 of the Asterisk prompts in five languages",
    "piano": "piano: Salamander Grand notes and piano rendered from FluidR3 samples",
    "drums": "drums: real one-shots (Sonic Pi, Hydrogen) and hits rendered from real kits",
    "noise": "DEMAND-like noise: traffic and domestic recordings (lincity-ng, Scratch, FLARE)",
}


_REAL_DATA = {"speech": "LJSpeech 1.1", "digits": "SC09", "piano": "WaveGAN piano", "drums": "WaveGAN drums",
              "noise": "DEMAND (DLIVING, STRAFFIC)"}


#: Deviations shared by every paper-1 table (docs/method.md explains each: Deviations at a glance).
COMMON_DEVIATIONS = [
    "matched inverse STFT (round trip > 100 dB); the authors' code inverted with a 1022-point window "
    "(~20 dB round trip): set mismatched_istft=True to reproduce it",
    "exponential dilation starts at 1 as in the authors' code (the paper text says 2)",
    "the three baseline designs were never published: same topology and widths, two conv+norm+ReLU per block",
    "speech clips are 2.048 s (32768 samples, 512 frames: a power-of-two grid twice the 1.024-s clips)",
]


def scale_deviations(p: FitSettings, unit: str = "clips per data set") -> list[str]:
    """Caption lines for a run smaller than the paper's: fewer clips or iterations, smaller priors."""
    out = []
    if p.prior_opts:
        out.append(f"smaller priors than the paper's ({p.profile} profile): build_prior options {p.prior_opts}")
    if p.max_samples:
        out.append(f"clips longer than {p.max_samples / 16000:.3f} s cut to their most energetic window of "
                   f"that length ({p.profile} profile)")
    if p.iterations < 2000 or p.n_clips < 50:
        out.append(f"reduced scale ({p.profile} profile): {p.n_clips} {unit} instead of 50, "
                   f"{p.iterations} iterations instead of 2000")
    if p.iterations < 2000 and p.oracle_patience is None:
        out.append(f"the oracle keeps the best iterate within {p.iterations} iterations, before most designs' "
                   f"curves have peaked (measured for Table 1 at the paper's widths: docs/costs.md), so the "
                   f"ranking favours the design that converges fastest")
    return out


def describe_data(source: str, datasets) -> str:
    """One phrase naming the data behind a table (embedded substitutes are never called by the
    real corpora's names)."""
    if source == "embedded":
        return "embedded set (real recordings, not the paper's corpora): " + "; ".join(
            _EMBEDDED_DATA.get(d, d) for d in datasets)
    return "real corpora: " + ", ".join(_REAL_DATA.get(d, d) for d in datasets)


def fit_description(p: FitSettings, rows) -> str:
    """Iterations, precision, device (and its model) and commits actually used (read from the rows);
    rows of several commits are named in a warning, never mixed silently."""
    prec = _values(rows, "precision") or p.precision
    dev = _values(rows, "device") or "?"
    model = _values(rows, "device_name")
    text = (f"Adam lr {p.lr}, x{p.lr_gamma} every {p.lr_step} iterations; precision {prec} "
            f"(requested {p.precision}); device {dev}" + (f" ({model})" if model else ""))
    torch_versions = _values(rows, "torch_version")
    if torch_versions:
        text += f"; torch {torch_versions}, cuDNN {_values(rows, 'cudnn_version')}"
    note = commits_note(rows)
    return f"{text}; {note}" if note else text


def _values(rows, column: str) -> str:
    """The distinct non-empty values of ``rows[column]``, sorted and joined (``""`` when none)."""
    if not len(rows) or column not in rows:
        return ""
    return ", ".join(sorted(set(rows[column].dropna().astype(str)) - {"", "nan"}))


def table_checks(comparison, rows) -> dict:
    """Named numbers a notebook publishes for its tests: per (rule, design, dataset, metric) mean,
    and fit counts."""
    out = {"n_rows": int(len(rows)), "n_failed_rows": int((rows["status"] == "failed").sum())}
    for r in comparison.dropna(subset=["mean"]).itertuples():
        out[f"{r.selection}/{r.design}/{r.dataset}/{r.metric}"] = float(r.mean)
    return out


# ----------------------------------------------------------------------------- classical baselines
#: Where a notebook's baseline rows go, beside the fits' rows.csv (same row contract, selection "none").
BASELINE_FILE = "baselines.csv"


def registered_baselines(task: str, observe) -> dict:
    """``{name: method(clip) -> estimate}`` for every baseline registered for ``task``
    (:func:`dap.baselines.baselines_for`); ``observe(clip) -> (observed, clean, context)`` gives each
    baseline what the task's corruption produced for that clip."""
    def method(baseline, clip):
        observed, clean, context = observe(clip)
        return baseline.run(observed, clean, **context)

    return {name: partial(method, get_baseline(name)) for name in baselines_for(task)}


def run_baselines(store, grid, clips: list[Clip], methods: dict, evaluate, progress=print):
    """Run each classical baseline of ``methods`` (name -> ``method(clip) -> estimate``) on every clip
    not yet in ``store`` and record its rows (``selection = "none"``, ``seconds`` = the call's wall
    time, ``iterations`` 0); ``evaluate(clip, estimate) -> {metric: value}`` as for the fits.
    Returns the rows of exactly these (clip, baseline) pairs. Each method is called once, untimed, on
    the first pending clip before the timed calls, so one-time set-up (librosa's JIT) is not counted.
    The baselines run in numpy on the CPU wherever the fits run: their precision class says so."""
    grid = replace(grid, precision_class=NUMPY_PRECISION_CLASS)
    pending = [(c, name, fit_id(grid.fit_config(c, name))) for c in clips for name in audited(c, list(methods))]
    todo = [item for item in pending if not store.has(item[2])]
    for name in dict.fromkeys(name for _, name, _ in todo):  # warm-up; a failure is recorded below
        try:
            methods[name](next(c for c, n, _ in todo if n == name))
        except DapError:
            pass
    for clip, name, fid in todo:
        progress(f"baseline {name} on {clip.dataset}/{clip.id}")
        base = {"fit_id": fid, "task": grid.task, "dataset": clip.dataset, "source": clip.source, "clip_id": clip.id,
                "design": name, "seed": grid.seed, "profile": grid.profile, "selection": "none", "iterations": 0,
                "device": "cpu", "precision": "numpy", **provenance(), **grid.stamp()}
        try:
            estimate, seconds = timed(methods[name], clip)
            rows = [{**base, "metric": k, "value": v, "seconds": round(seconds, 4), "status": "ok", "error": ""}
                    for k, v in evaluate(clip, estimate).items()]
        except DapError as exc:
            rows = [{**base, "metric": "baseline", "value": float("nan"), "status": "failed", "error": str(exc)}]
        store.add(rows)
    rows = store.rows
    return rows[rows["fit_id"].isin([fid for _, _, fid in pending])].reset_index(drop=True) if len(rows) else \
        pd.DataFrame(columns=rows.columns)


def baseline_note(baselines, rows) -> str:
    """Caption line: what each classical baseline in ``baselines`` is, what it knows, its median cost
    per clip, and the deep priors' median cost per fit in ``rows`` (wall time on the machine that ran
    them). Empty without baseline rows."""
    if baselines is None or baselines.empty:
        return ""
    calls = baselines.drop_duplicates("fit_id")
    parts = []
    for name in dict.fromkeys(calls["design"]):
        what, knows = get_baseline(name).what, get_baseline(name).knows
        seconds = calls.loc[calls["design"] == name, "seconds"].astype(float).median()
        parts.append(f"`{name}` = {what}; knows: {knows}; {1000 * seconds:.0f} ms per clip")
    fits = rows[rows["status"] == "ok"].drop_duplicates("fit_id") if len(rows) else rows
    priors = "; ".join(f"{DESIGN_LABELS.get(d, d)} {g['seconds'].astype(float).median():.1f} s"
                       for d, g in fits.groupby("design", sort=False)) if len(fits) else "no fits"
    return ("Classical baselines (extra rows, references that are not ranked; same clips and metrics; median wall "
            "time per clip on this machine): " + " | ".join(parts)
            + f". Deep priors' median wall time per fit: {priors}")
