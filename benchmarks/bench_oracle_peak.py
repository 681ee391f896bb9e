"""Where the oracle curve peaks, and what running every fit to its peak costs (docs/costs.md).

Table 1's fits (Gaussian denoising, notebook 02's clips, noise and settings of ``--profile``) run with
the oracle rule extended to its peak (``oracle_patience``, capped at ``--cap``): per design and clip it
prints the peak iteration, the oracle SNR at the peak and at the profile's budget (the best iterate up
to ``iterations``, what the table reports today), the iterations run and the seconds. The last lines
summarise per design (medians) and whether the designs' order by mean oracle SNR is the same at the
budget and at the peak.

    .venv/bin/python benchmarks/bench_oracle_peak.py [--datasets speech digits] [--clips 1] [--patience 50] [--cap 800]
        [--widths 18 35 70] [--lr 3e-3] [--out rows.csv]
    .venv/bin/python benchmarks/bench_oracle_peak.py --side-by-side PAPER.csv OTHER.csv

``--widths``/``--lr`` fit a cheaper setting (narrower priors with a matched learning rate) and
``--side-by-side`` puts two such runs' rows next to each other per design and clip: the peak level and its
difference, the seconds to reach the peak, and whether the designs keep their order on each clip.

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


def seconds_to_peak(rows: pd.DataFrame) -> pd.Series:
    """Seconds a fit spent up to its peak iteration (its mean speed times the peak iteration)."""
    return rows["seconds_per_iteration"] * rows["peak_iteration"]


def side_by_side(reference: pd.DataFrame, other: pd.DataFrame) -> str:
    """Markdown: per clip and design, both settings' oracle peak (dB), its difference, the seconds to the
    peak and their ratio; then per design the mean difference and time ratio, and per clip whether the
    designs' order by peak SNR is the same under both settings.

    Args:
        reference, other: rows of :func:`measure` (one per data set, clip and design), e.g. the paper's
            widths and a cheaper setting, on the same clips.
    """
    keys = ["dataset", "clip_id", "design"]
    both = reference.assign(seconds_to_peak=seconds_to_peak(reference)).merge(
        other.assign(seconds_to_peak=seconds_to_peak(other)), on=keys, suffixes=("", "_other"))
    if both.empty:
        raise SystemExit("the two row files share no (data set, clip, design)")
    both["difference"] = both["snr_at_peak_other"] - both["snr_at_peak"]
    both["time_ratio"] = both["seconds_to_peak_other"] / both["seconds_to_peak"]
    cols = keys + ["snr_at_peak", "snr_at_peak_other", "difference", "peak_iteration", "peak_iteration_other",
                   "seconds_to_peak", "seconds_to_peak_other", "time_ratio", "peaked", "peaked_other"]
    lines = [both[cols].round(2).to_markdown(index=False), ""]
    per_design = both.groupby("design").agg(n=("clip_id", "size"), difference_mean=("difference", "mean"),
                                            difference_worst=("difference", "min"), time_ratio=("time_ratio", "median"))
    lines += [per_design.round(2).to_markdown(), ""]
    for (dataset, clip), g in both.groupby(["dataset", "clip_id"]):
        order = [list(g.sort_values(c, ascending=False)["design"]) for c in ("snr_at_peak", "snr_at_peak_other")]
        lines.append(f"- {dataset} {clip}: order {'kept' if order[0] == order[1] else 'changed'} "
                     f"({' > '.join(order[0])} | {' > '.join(order[1])})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--datasets", nargs="+", default=["speech", "digits"])
    ap.add_argument("--designs", nargs="+", choices=ALL_DESIGNS, default=None, help="default: the notebook's")
    ap.add_argument("--clips", type=int, default=1)
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--cap", type=int, default=800)
    ap.add_argument("--widths", type=int, nargs=3, default=None, help="prior widths (default: the profile's)")
    ap.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default: the profile's)")
    ap.add_argument("--out", default=None, help="also write the per-fit rows as CSV here")
    ap.add_argument("--side-by-side", nargs=2, metavar=("REFERENCE_CSV", "OTHER_CSV"), default=None,
                    help="compare two runs' rows (--out files) and exit")
    args = ap.parse_args(argv)
    if args.side_by_side:
        print(side_by_side(*(pd.read_csv(f) for f in args.side_by_side)))
        return 0
    overrides = {"datasets": tuple(args.datasets), "n_clips": args.clips}
    if args.widths:
        overrides["prior_opts"] = {"widths": tuple(args.widths)}
    if args.lr:
        overrides["lr"] = args.lr
    if args.designs:
        overrides["designs"] = tuple(args.designs)
    p = resolve(NOTEBOOK, args.profile, **overrides)
    start = time.perf_counter()
    rows = measure(p, args.patience, args.cap)
    if args.out:
        rows.to_csv(args.out, index=False)
    print(f"# Oracle peak of Table 1's fits ({args.profile}: budget {p.iterations}, lr {p.lr}, "
          f"widths {(p.prior_opts or {}).get('widths', 'the paper s')}; patience "
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
