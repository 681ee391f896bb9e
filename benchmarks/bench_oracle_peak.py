"""Where the oracle curve peaks, and what running every fit to its peak costs (docs/costs.md).

Table 1's fits (Gaussian denoising, notebook 02's clips, noise and settings of ``--profile``) run with
the oracle rule extended to its peak (``oracle_patience``, capped at ``--cap``): per design and clip it
prints the peak iteration, the oracle SNR at the peak and at the profile's budget (the best iterate up
to ``iterations``, what the table reports today), the iterations run and the seconds. The last lines
summarise per design (medians) and whether the designs' order by mean oracle SNR is the same at the
budget and at the peak.

    .venv/bin/python benchmarks/bench_oracle_peak.py [--datasets speech digits] [--clips 1] [--patience 50] [--cap 800]

Timings belong here, never in tests; they are this machine's (the header names it).
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from dap.config.profiles import resolve
from dap.core.provenance import git_commit, machine_description
from dap.core.seeds import derive_seed
from dap.priors import ALL_DESIGNS
from dap.studies.common import fit_config, load_normalised
from dap.studies.denoising import noisy_observation
from dap.tasks import denoise

NOTEBOOK = "02_table1_gaussian_denoising"


def measure(p, patience: int, cap: int) -> pd.DataFrame:
    """One row per (data set, clip, design): peak iteration and SNR, SNR at the budget, iterations, seconds."""
    config = fit_config(p.replace(oracle_patience=patience, oracle_cap=cap), progress=False)
    out = []
    for dataset in p.datasets:
        for clip in load_normalised(dataset, p.n_clips, p.seed, "embedded", None, p.max_samples):
            noisy, _ = noisy_observation(clip, "gaussian", p, None)
            for design in p.designs:
                start = time.perf_counter()
                result = denoise.restore(noisy, design, config, seed=derive_seed(p.seed, dataset, clip.id),
                                         clean=clip.audio, prior_opts=p.prior_opts)
                seconds = time.perf_counter() - start
                h = result.history
                within = h[h["iteration"] <= p.iterations]
                row = {"dataset": dataset, "clip_id": clip.id, "design": design, "status": result.status,
                       "peak_iteration": result.best_iteration.get("oracle"),
                       "snr_at_peak": float(h["snr"].max()), "snr_at_budget": float(within["snr"].max()),
                       "iterations": result.iterations, "peaked": result.extra.get("oracle_peaked"),
                       "seconds": round(seconds, 1), "seconds_per_iteration": round(seconds / max(result.iterations, 1), 3)}
                out.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), file=sys.stderr, flush=True)
    return pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--datasets", nargs="+", default=["speech", "digits"])
    ap.add_argument("--designs", nargs="+", choices=ALL_DESIGNS, default=None, help="default: the notebook's")
    ap.add_argument("--clips", type=int, default=1)
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--cap", type=int, default=800)
    ap.add_argument("--out", default=None, help="also write the per-fit rows as CSV here")
    args = ap.parse_args(argv)
    overrides = {"datasets": tuple(args.datasets), "n_clips": args.clips}
    if args.designs:
        overrides["designs"] = tuple(args.designs)
    p = resolve(NOTEBOOK, args.profile, **overrides)
    start = time.perf_counter()
    rows = measure(p, args.patience, args.cap)
    if args.out:
        rows.to_csv(args.out, index=False)
    print(f"# Oracle peak of Table 1's fits ({args.profile}: budget {p.iterations}, lr {p.lr}; patience "
          f"{args.patience}, cap {args.cap}); {machine_description()}; commit {git_commit()}; "
          f"{time.perf_counter() - start:.0f} s\n")
    print(rows.to_markdown(index=False) + "\n")
    by = rows.groupby("design").agg(n=("clip_id", "size"), peak_iteration=("peak_iteration", "median"),
                                    snr_at_budget=("snr_at_budget", "mean"), snr_at_peak=("snr_at_peak", "mean"),
                                    iterations=("iterations", "median"),
                                    seconds_per_iteration=("seconds_per_iteration", "median"),
                                    peaked=("peaked", "mean"))
    by = by.reindex([d for d in p.designs if d in by.index])
    print(by.to_markdown() + "\n")
    order = [list(by.sort_values(col, ascending=False).index) for col in ("snr_at_budget", "snr_at_peak")]
    print(f"order by mean oracle SNR at the budget: {order[0]}; at the peak: {order[1]}; "
          f"{'the same' if order[0] == order[1] else 'different'}")
    cost = (rows["iterations"] * rows["seconds_per_iteration"]).sum() / (
        rows["seconds_per_iteration"] * p.iterations).sum()
    print(f"cost of running to the peak: {cost:.2f} x the budget's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
