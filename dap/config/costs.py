"""Measured cost of one fit iteration per prior design, kept in one place (no torch import, so the
command line can use it before loading a model).

CPU: seconds per iteration on one 1.024-s window (2 x 512 x 256), idle 2-core CPU, bf16 fast path,
from ``benchmarks/bench_fit.py`` (results/reference/benchmarks.md; harmonic from the previous run of
the same script). GPU: the same quantity per GPU model, in the precision fits resolve to there
(``auto``), pasted from the "For dap/config/costs.py" section that ``benchmarks/gpu_check.py`` writes; a
model without a measurement has no entry (no GPU has been measured for this repository yet).
Used for the time estimate ``python -m dap restore`` prints and to start a parallel grid's longest
fits first; no result depends on them.
"""

from __future__ import annotations

from dap.config.notebook_settings import FitSettings, SeparationSettings, StoppingSettings
from dap.config.profiles import resolve

CPU_SECONDS_PER_ITERATION = {"conv": 0.59, "dilated": 0.57, "dilated_exp": 0.58, "dilated_exp_dense": 1.01,
                             "harmonic": 2.92}

#: ``{GPU model as dap.core.device.device_name gives it: {design: seconds per iteration}}``.
GPU_SECONDS_PER_ITERATION: dict[str, dict[str, float]] = {}


def seconds_per_iteration(design: str, gpu_model: str | None = None) -> float | None:
    """Measured seconds per iteration of ``design`` on a 1.024-s window: on the CPU of the table
    (``gpu_model`` None), or on that GPU model; None where nothing was measured."""
    table = CPU_SECONDS_PER_ITERATION if gpu_model is None else GPU_SECONDS_PER_ITERATION.get(gpu_model, {})
    return table.get(design)


#: Native clip length (samples) of each embedded / paper data set; ``max_samples`` may cut it.
CLIP_SAMPLES = {"speech": 32768}
_DEFAULT_CLIP = 16384
#: Priors trained per separation fit (two sources and the masks: dap.tasks.separate).
_SEPARATION_PRIORS = 3


def study_cost(notebook: str, profile: str) -> dict | None:
    """What ``notebook`` fits under ``profile``, from its settings: ``{"n": clips (mixtures) per data
    set, "fits", "fit_iterations", "cpu_hours"}``; None for notebooks that fit no prior (paper 2, the
    teaching notebooks). ``cpu_hours`` assumes one fit at a time on the 2-core CPU of
    :data:`CPU_SECONDS_PER_ITERATION`, linear in clip length (the costs were measured on 1.024 s);
    None when the priors are not the paper's widths (no measurement) or a design is unmeasured.
    Figures 1-2 share Table 1's fits: each is costed as if it ran alone."""
    p = resolve(notebook, profile)
    if not isinstance(p, FitSettings):
        return None
    if isinstance(p, SeparationSettings):
        per_clip = [("mixture", p.max_samples or _DEFAULT_CLIP)]
        priors, fits_per = _SEPARATION_PRIORS, 1
    else:
        per_clip = [(d, min(CLIP_SAMPLES.get(d, _DEFAULT_CLIP), p.max_samples or 10 ** 9)) for d in p.datasets]
        priors = 1
        fits_per = len(p.snrs) * len(p.noises) if isinstance(p, StoppingSettings) else 1
    # the stopping cap: an upper bound
    iterations = p.max_iterations if isinstance(p, StoppingSettings) else p.iterations
    fits = len(per_clip) * p.n_clips * len(p.designs) * fits_per
    per = {design: seconds_per_iteration(design) for design in p.designs}
    hours = None
    if not p.prior_opts and None not in per.values():
        clip_seconds = sum(samples / _DEFAULT_CLIP for _, samples in per_clip) * sum(per.values())
        hours = p.n_clips * fits_per * iterations * priors * clip_seconds / 3600
    return {"n": p.n_clips, "fits": fits, "fit_iterations": fits * iterations, "cpu_hours": hours}
