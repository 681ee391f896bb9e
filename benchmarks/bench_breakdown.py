"""Where a quick notebook's time goes: network compute, per-iteration bookkeeping and scoring, metrics,
baselines, data and I/O, and start-up (issue "Where the 15 hours go", docs/costs.md).

    .venv/bin/python benchmarks/bench_breakdown.py 04 [02 05 ...] [--clips 1] [--designs dilated_exp_dense]

Runs the fit plan of each notebook (``dap.studies.plans.run_plans``: the notebook's own grid, baselines
and scoring, without papermill) in quick with one worker in this process, under cProfile, into a
temporary results folder; then splits the wall time into the categories below by the cumulative time of
the functions that own them (nested categories are subtracted from their parents, so the parts add up to
the whole). Start-up is measured apart: a fresh interpreter importing what a notebook imports.

Categories
  network     forward + backward + Adam inside dap.engine.fit.fit (the fit minus its bookkeeping)
  tracking    the per-iteration scores of the oracle / history (the task's tracker, every iteration)
  bookkeeping the rest of the per-iteration read-back (loss checks, EMA, decode to waveforms)
  metrics     final scoring of the outputs (PESQ, BSS Eval, SNRs), outside the fit loop
  baselines   the classical baselines (run_baselines)
  data + I/O  loading clips, writing rows / histories / outputs
  other       what remains (set-up of priors, the grid's own code)

Timings belong here, never in tests. Compare parts as shares of one run, not across machines.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time

#: (function name, file suffix) of the functions whose cumulative time is "data + I/O"
DATA_IO = [("load_normalised", "dap/studies/common.py"), ("add", "dap/core/store.py"),
           ("_save_history", "dap/engine/grid.py"), ("_save_outputs", "dap/engine/grid.py")]


def cumulative(stats: pstats.Stats, name: str, suffix: str | None) -> float:
    """Summed cumulative seconds of the functions called ``name`` (in files ending with ``suffix``)."""
    total = 0.0
    for (path, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if func == name and (suffix is None or path.replace(os.sep, "/").endswith(suffix)):
            total += ct
    return total


def tracker_seconds(stats: pstats.Stats) -> float:
    """Cumulative seconds of the trackers the engine calls per tracked iteration: the callees of
    ``_Bookkeeping.read_back`` that live outside the engine (the task's scoring functions)."""
    total = 0.0
    for (path, _line, func), (_cc, _nc, _tt, _ct, callers) in stats.stats.items():
        for (cpath, _cl, cfunc), caller_stats in callers.items():
            if cfunc == "read_back" and cpath.endswith("dap/engine/fit.py") and "dap/engine/fit.py" not in path \
                    and "dap/" in path.replace(os.sep, "/"):
                total += caller_stats[3]  # cumulative time of this callee when called from read_back
    return total


def breakdown(notebook: str, clips: int, designs: list[str] | None, profile: str = "quick") -> dict[str, float]:
    """Seconds per category for the fit plan of ``notebook`` in ``profile`` with ``clips`` clips per data set."""
    from dap.studies.plans import run_plans

    overrides = {"n_clips": clips, "workers": 1}
    if designs:
        overrides["designs"] = tuple(designs)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DAP_RESULTS"] = tmp
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        run_plans([notebook], profile, overrides, progress=lambda _: None)
        profiler.disable()
        wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    fit = cumulative(stats, "fit", "dap/engine/fit.py")
    read_back = cumulative(stats, "read_back", "dap/engine/fit.py")
    tracking = tracker_seconds(stats)
    metrics = cumulative(stats, "_evaluate_clip", None)
    baselines = cumulative(stats, "run_baselines", "dap/studies/common.py")
    data_io = sum(cumulative(stats, name, suffix) for name, suffix in DATA_IO)
    parts = {"network": fit - read_back, "tracking": tracking, "bookkeeping": read_back - tracking,
             "metrics": metrics, "baselines": baselines, "data + I/O": data_io}
    parts["other"] = wall - sum(parts.values())
    parts["total"] = wall
    return parts


def startup_seconds() -> float:
    """A fresh interpreter importing what a notebook imports (torch, the studies, the report)."""
    code = "import dap.studies.denoising, dap.studies.inpainting, dap.studies.separation, dap.report.tables"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", help="notebook prefixes with fits (02 03 04 05 06 11)")
    ap.add_argument("--clips", type=int, default=1, help="clips per data set (quick: 3)")
    ap.add_argument("--designs", nargs="*", default=None, help="designs (default: the notebook's)")
    ap.add_argument("--profile", default="quick", help="the notebooks' settings of this profile (default quick)")
    args = ap.parse_args()
    from dap.core.provenance import git_commit, machine_description

    print(f"machine: {machine_description()}; commit {git_commit()}; profile {args.profile}; "
          f"start-up {startup_seconds():.1f} s")
    header = ["notebook", "network", "tracking", "bookkeeping", "metrics", "baselines", "data + I/O", "other", "total"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for nb in args.notebooks:
        parts = breakdown(nb, args.clips, args.designs, args.profile)
        cells = [f"{parts[k]:.0f} s ({100 * parts[k] / parts['total']:.0f} %)" for k in header[1:-1]]
        print(f"| {nb} | " + " | ".join(cells) + f" | {parts['total']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
