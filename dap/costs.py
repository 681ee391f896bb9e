"""Measured cost of one fit iteration per prior design, kept in one place (no torch import, so the
command line can use it before loading a model).

CPU: seconds per iteration on one 1.024-s window (2 x 512 x 256), idle 2-core CPU, bf16 fast path,
from ``benchmarks/bench_fit.py`` (results/reference/benchmarks.md; harmonic from the previous run of
the same script). GPU: the same quantity per GPU model, in the precision fits resolve to there
(``auto``), pasted from the "For dap/costs.py" section that ``benchmarks/gpu_check.py`` writes; a
model without a measurement has no entry (no GPU has been measured for this repository yet).
Used for the time estimate ``python -m dap restore`` prints and to start a parallel grid's longest
fits first; no result depends on them.
"""

CPU_SECONDS_PER_ITERATION = {"conv": 0.59, "dilated": 0.57, "dilated_exp": 0.58, "dilated_exp_dense": 1.01,
                             "harmonic": 2.92}

#: ``{GPU model as dap.core.device.device_name gives it: {design: seconds per iteration}}``.
GPU_SECONDS_PER_ITERATION: dict[str, dict[str, float]] = {}


def seconds_per_iteration(design: str, gpu_model: str | None = None) -> float | None:
    """Measured seconds per iteration of ``design`` on a 1.024-s window: on the CPU of the table
    (``gpu_model`` None), or on that GPU model; None where nothing was measured."""
    table = CPU_SECONDS_PER_ITERATION if gpu_model is None else GPU_SECONDS_PER_ITERATION.get(gpu_model, {})
    return table.get(design)
