"""Measured cost of one fit iteration per prior design, kept in one place (no torch import, so the
command line can use it before loading a model).

Seconds per iteration on one 1.024-s window (2 x 512 x 256), idle 2-core CPU, bf16 fast path, from
``benchmarks/bench_fit.py`` (results/reference/benchmarks.md; harmonic from the previous run of the
same script). Used for the time estimate ``python -m dap restore`` prints and to start a parallel
grid's longest fits first; no result depends on them.
"""

CPU_SECONDS_PER_ITERATION = {"conv": 0.59, "dilated": 0.57, "dilated_exp": 0.58, "dilated_exp_dense": 1.01,
                             "harmonic": 2.92}
