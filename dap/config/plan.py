"""The predicted wall time of each notebook on this machine (``./run_all.sh --plan``; docs/costs.md).

Arithmetic only: the speeds come in as a function (:class:`dap.tasks.probe.Speeds` measures them), so
the model can be tested with made-up speeds. For a notebook that fits priors:

    seconds = STARTUP_SECONDS + overhead x makespan over ``workers`` of its fits' seconds,
              each (first + (iterations - 1) x steady) x clip samples / PROBE_SAMPLES

where steady is the seconds per iteration of the fit's spec measured here and first the time to the end
of its first iteration (building the prior and the kernels), each timed as a fit runs in the grid
(:class:`Machine`: on a CPU the workers share the cores, a worker's fit gets its share of the threads),
with the overhead factor of its row in :data:`dap.config.costs.NOTEBOOK_COSTS` (scoring, metrics,
baselines; the median of the table where its run has none). Fits that an earlier notebook of the same
plan has already run (Figures 1-2 and Table 1 share a result store) are counted once, in the first.
For a notebook that fits no prior (paper 2 trains a BiLSTM; 00, 09, 10 teach), its measured time on
the reference machine times this machine's speed ratio: the probe's seconds per iteration of
``dilated_exp`` (paper widths) in the notebook's precision over the reference machine's
(:data:`dap.config.costs.CPU_SECONDS_PER_ITERATION`, fp32: ``CPU_FP32_SECONDS_PER_ITERATION``),
given only where the run had the settings asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from dap.config.costs import (CPU_FP32_SECONDS_PER_ITERATION, CPU_SECONDS_PER_ITERATION, NOTEBOOK_COSTS,
                              PROBE_SAMPLES, REFERENCE_SAMPLES, STARTUP_SECONDS, ProbeSpec, default_overhead,
                              fit_groups, measured_settings)
from dap.config.notebook_settings import NotebookSettings
from dap.config.profiles import resolve, settings_class

#: The design the speed ratio of notebooks without priors is measured with.
RATIO_DESIGN = "dilated_exp"

#: spec (precision resolved) -> (steady, first) seconds on a PROBE_SAMPLES clip here (dap.tasks.probe.Speeds).
Speed = Callable[[ProbeSpec], tuple[float, float]]


@dataclass(frozen=True)
class Machine:
    """How fits run on this machine. resolve_precision: requested -> the precision fits run in here
    (dap.core.device.resolve_precision); workers: fits at once for a notebook's settings
    (dap.studies.common.fit_workers: 2 on a CPU of 2+ cores, one per GPU); cpu_threads: the cores the
    workers share (dap.engine.grid: each gets ``cpu_threads // workers`` threads), 0 on GPUs."""

    resolve_precision: Callable[[str], str] = lambda requested: requested
    workers: Callable[[NotebookSettings], int] = lambda p: 1
    cpu_threads: int = 0

    def spec(self, spec: ProbeSpec, workers: int = 1) -> ProbeSpec:
        """``spec`` as a fit runs here: its precision resolved, and on a CPU with several workers its
        share of the threads (0, every thread, for a fit alone)."""
        threads = max(1, self.cpu_threads // workers) if self.cpu_threads and workers > 1 else 0
        return replace(spec, precision=self.resolve_precision(spec.precision), threads=threads)


@dataclass(frozen=True)
class NotebookPlan:
    """One notebook's prediction: ``seconds`` (None: nothing measured to scale) and how it was made."""

    notebook: str
    seconds: float | None
    how: str


def notebook_settings(notebook: str, profile: str, params: dict | None = None) -> NotebookSettings:
    """The settings ``notebook`` runs with under ``profile``: the ``-p`` overrides in ``params`` that
    are settings of its class applied (the others belong to other notebooks or its parameters cell)."""
    names = settings_class(notebook).names()
    return resolve(notebook, profile, **{k: v for k, v in (params or {}).items() if k in names and k != "profile"})


def _precision(p: NotebookSettings) -> str:
    """The precision a notebook's work runs in as requested: fp32 where it has no setting (paper 2
    trains without autocast; 00 fits nothing)."""
    return getattr(p, "precision", "fp32")


def ratio_spec(precision: str) -> ProbeSpec:
    """The probe behind the speed ratio of a notebook computing in ``precision`` (resolved here)."""
    return ProbeSpec("denoise", RATIO_DESIGN, (), precision)


def reference_seconds(requested: str) -> float:
    """Seconds per iteration of :func:`ratio_spec` on the reference machine, on a
    :data:`PROBE_SAMPLES` clip (linear in length from the 1.024-s table), for a notebook that asked
    for ``requested`` (the reference has native bf16, so ``auto`` ran in bf16 there)."""
    table = CPU_SECONDS_PER_ITERATION if requested in ("auto", "bf16") else CPU_FP32_SECONDS_PER_ITERATION
    return table[RATIO_DESIGN] * PROBE_SAMPLES / REFERENCE_SAMPLES


def probe_specs(notebooks: list[str], profile: str, params: dict | None = None,
                machine: Machine = Machine()) -> list[ProbeSpec]:
    """What the probe must time for :func:`predict` of the same arguments, each once, in order."""
    specs: list[ProbeSpec] = []
    for notebook in notebooks:
        p = notebook_settings(notebook, profile, params)
        groups = fit_groups(p)
        if groups is None:
            specs.append(ratio_spec(machine.resolve_precision(_precision(p))))
        else:
            specs += [machine.spec(g.spec, machine.workers(p)) for g in groups]
    return list(dict.fromkeys(specs))


def predict(notebooks: list[str], profile: str, speed: Speed, params: dict | None = None,
            machine: Machine = Machine()) -> list[NotebookPlan]:
    """The predicted wall time of each notebook, run in this order (see the module docstring).

    Args:
        notebooks: names (``02_table1_gaussian_denoising``), in run order.
        profile: smoke | quick | paper.
        speed: ``(steady, first)`` seconds of a :class:`ProbeSpec` (resolved precision) on a
            :data:`PROBE_SAMPLES`-sample clip on this machine (:func:`dap.tasks.probe.time_iteration`).
        params: ``-p`` overrides (each applies to the notebooks that have it).
        machine: how fits run here (precision, workers, threads); the default: one fit at a time,
            precisions as requested.

    Returns:
        One :class:`NotebookPlan` per notebook.
    """
    counted: dict[str, str] = {}  # share key -> the notebook that counted it
    plans = []
    for notebook in notebooks:
        p = notebook_settings(notebook, profile, params)
        groups = fit_groups(p)
        cost = NOTEBOOK_COSTS.get(notebook)
        if groups is None:
            plans.append(_scaled_run(notebook, p, cost, speed, machine.resolve_precision))
            continue
        new = [g for g in groups if g.share_key not in counted]
        shared = sorted({counted[g.share_key][:2] for g in groups if g.share_key in counted})
        counted.update({g.share_key: notebook for g in new})
        workers = max(1, machine.workers(p))
        fit_seconds = makespan([_fit_seconds(speed(machine.spec(g.spec, workers)), g.iterations)
                                * g.samples / PROBE_SAMPLES for g in new for _ in range(g.fits)], workers)
        if cost is not None and cost.overhead is not None:
            factor, whose = cost.overhead, "" if cost.current else ", overhead from an older profile's run"
        else:
            factor, whose = default_overhead(), ", overhead: the table's median (no measured run)"
        how = (f"{sum(g.fits for g in new)} fits x {_iterations(new)} it"
               + (f" on {workers} workers" if workers > 1 else "") + f" = {fit_seconds / 60:.1f} min of fits "
               f"x overhead {factor:.2f}{whose}" + (f"; fits of {', '.join(shared)} not counted again" if shared else ""))
        plans.append(NotebookPlan(notebook, STARTUP_SECONDS + factor * fit_seconds, how))
    return plans


def makespan(fits: list[float], workers: int) -> float:
    """Wall seconds of fits taking ``fits`` seconds each on ``workers`` workers, longest first, each
    to the worker free first (as :func:`dap.engine.grid.run_grid` submits them): three equal fits on
    two workers take two fits' time, not one and a half."""
    loads = [0.0] * max(1, workers)
    for seconds in sorted(fits, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def _fit_seconds(speed: tuple[float, float], iterations: int) -> float:
    """One fit of ``iterations`` on a probe-length clip, from its ``(steady, first)`` seconds."""
    steady, first = speed
    return first + (iterations - 1) * steady if iterations > 0 else 0.0


def _iterations(groups) -> str:
    values = sorted({g.iterations for g in groups})
    return "/".join(map(str, values)) or "0"


def _scaled_run(notebook: str, p: NotebookSettings, cost, speed: Speed, resolve_precision) -> NotebookPlan:
    """A notebook without priors: its measured reference time x this machine's speed ratio, when the
    measured run had these settings."""
    if cost is None:
        return NotebookPlan(notebook, None, "no measured run in dap/config/costs.py")
    if not _same(measured_settings(notebook), p):
        return NotebookPlan(notebook, None, f"no measured run in these settings (measured: quick, {cost.seconds:.0f} s)")
    requested = _precision(p)
    here = resolve_precision(requested)
    ratio = speed(ratio_spec(here))[0] / reference_seconds(requested)
    return NotebookPlan(notebook, cost.seconds * ratio,
                        f"{cost.seconds:.0f} s measured on the reference machine x speed ratio {ratio:.2f} "
                        f"({RATIO_DESIGN}, {here})")


def _same(a: NotebookSettings | None, b: NotebookSettings) -> bool:
    """Equal settings, whatever profile each was resolved from."""
    return a is not None and type(a) is type(b) and all(
        getattr(a, k) == getattr(b, k) for k in b.names() if k != "profile")


def minutes(seconds: float) -> str:
    """``12`` or ``0.4``: whole minutes from 10 on, one decimal below."""
    m = seconds / 60
    return f"{m:.0f}" if m >= 10 else f"{m:.1f}"


def plan_lines(plans: list[NotebookPlan]) -> list[str]:
    """The plan as printed: one line per notebook, a note on those without an estimate, and last
    ``predicted total: N min``."""
    width = max((len(p.notebook) for p in plans), default=0)
    lines = [f"  {p.notebook:<{width}}  {'?' if p.seconds is None else minutes(p.seconds):>5} min  {p.how}"
             for p in plans]
    missing = [p.notebook[:2] for p in plans if p.seconds is None]
    if missing:
        lines.append(f"  (the total leaves out {', '.join(missing)}: nothing measured to scale)")
    lines.append(f"predicted total: {minutes(sum(p.seconds or 0.0 for p in plans))} min")
    return lines
