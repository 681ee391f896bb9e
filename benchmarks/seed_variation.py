"""How far a per-clip value moves when only the fit's seed changes: the tolerances of
``python -m dap compare`` (:data:`dap.claims.compare.TOLERANCES`).

Table 1's fits (Gaussian denoising, notebook 02's settings of ``--profile``, quick by default): each
clip gets the notebook's noisy observation once, then is fitted under several seeds, so that only the
prior's initialisation and latent input change. The fit seed of seed ``s`` is the one the study
derives from ``s`` (``derive_seed(s, dataset, clip id)``): seed 0 is the notebook's own fit. Per
metric it prints the standard deviation across seeds of the per-clip value (per design, clip and
selection rule), pooled over them, and the tolerance it implies: 2 x the pooled SD (a cell is a mean
over clips, so a re-run's cell moves by less than one clip does; 2 x keeps a margin for that).

    .venv/bin/python benchmarks/seed_variation.py                                      # the measurement
    .venv/bin/python benchmarks/seed_variation.py --iterations 3 --seeds 2 --clips 1   # a toy check

Only the denoising metrics (PESQ, PSNR, SNR) are measured; the other metrics' tolerances stay the
defaults of dap/claims/compare.py.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from dap.config.profiles import resolve
from dap.core.provenance import git_commit, machine_description
from dap.core.seeds import derive_seed
from dap.engine.fit import SELECTIONS
from dap.priors import ALL_DESIGNS
from dap.studies.common import fit_config, load_normalised
from dap.studies.denoising import DENOISING_METRICS, DISCREPANCY_SETTINGS, noisy_observation
from dap.tasks import denoise

NOTEBOOK = "02_table1_gaussian_denoising"
#: The tolerance is this many pooled standard deviations.
SDS = 2.0


def measure(p, seeds: int) -> pd.DataFrame:
    """One row per (data set, clip, design, seed, selection, metric) with its value: the clips, designs
    and fit settings of ``p`` (notebook 02's settings), each fitted under ``seeds`` seeds."""
    config = fit_config(p, progress=False)
    total = len(p.datasets) * p.n_clips * len(p.designs) * seeds
    print(f"{total} fits: {len(p.datasets)} data set(s) x {p.n_clips} clip(s) x {len(p.designs)} design(s) x "
          f"{seeds} seeds, {p.iterations} iterations, precision {p.precision}", file=sys.stderr)
    out, done, t0 = [], 0, time.perf_counter()
    for dataset in p.datasets:
        wanted = DENOISING_METRICS.get(dataset, ("PSNR", "SNR"))
        for clip in load_normalised(dataset, p.n_clips, p.seed, "embedded", None, p.max_samples):
            # the observation stays fixed across fit seeds: drawn from the notebook's seed, as Table 1 draws it
            noisy, _ = noisy_observation(clip, "gaussian", p, None)  # the notebook's own observation
            for design in p.designs:
                for seed in range(seeds):
                    result = denoise.restore(noisy, design, config, seed=derive_seed(seed, dataset, clip.id),
                                             clean=clip.audio, prior_opts=p.prior_opts,
                                             noise=DISCREPANCY_SETTINGS["noise_estimator"])
                    done += 1
                    print(f"[{done}/{total}] {dataset}/{clip.id} {design} seed {seed} "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                    if not result.ok:
                        print(f"  failed: {result.error}", file=sys.stderr)
                        continue
                    for rule in (r for r in SELECTIONS if r in result.outputs):
                        values = denoise.evaluate(clip.audio, result.outputs[rule], pesq_mode=p.pesq_mode)
                        out += [{"dataset": dataset, "clip_id": clip.id, "design": design, "seed": seed,
                                 "selection": rule, "metric": m, "value": v} for m, v in values.items() if m in wanted]
    return pd.DataFrame(out)


def spread(values: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: how many (design, clip, selection) settings were fitted under at least two
    seeds, their pooled SD across seeds (root of the mean variance) and the largest SD."""
    finite = values[np.isfinite(values["value"])]
    per_setting = (finite.groupby(["dataset", "clip_id", "design", "selection", "metric"])["value"]
                   .agg(["var", "std", "count"]).reset_index())
    per_setting = per_setting[per_setting["count"] >= 2]
    table = per_setting.groupby(by).agg(settings=("var", "size"), pooled_sd=("var", lambda v: float(np.sqrt(v.mean()))),
                                        largest_sd=("std", "max")).reset_index()
    table["tolerance"] = SDS * table["pooled_sd"]
    return table


def markdown(table: pd.DataFrame, columns: list[str]) -> str:
    """``table`` as a markdown table of ``columns`` (numbers with 4 significant digits)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help="notebook 02's settings of this profile (default quick)")
    ap.add_argument("--datasets", nargs="+", default=["speech", "digits", "piano"])
    ap.add_argument("--designs", nargs="+", choices=ALL_DESIGNS, default=["conv", "dilated_exp_dense"])
    ap.add_argument("--clips", type=int, default=2, help="clips per data set (default 2)")
    ap.add_argument("--seeds", type=int, default=4, help="fit seeds per clip, at least 2 (default 4)")
    ap.add_argument("--iterations", type=int, default=None, help="fit iterations (default: the profile's)")
    ap.add_argument("--precision", default=None, help="auto | fp32 | bf16 | tf32 (default: the profile's)")
    args = ap.parse_args(argv)
    if args.seeds < 2 or args.clips < 1:
        ap.error(f"need --seeds >= 2 and --clips >= 1 (got {args.seeds}, {args.clips})")
    p = resolve(NOTEBOOK, args.profile, datasets=tuple(args.datasets), n_clips=args.clips,
                designs=tuple(args.designs), iterations=args.iterations, precision=args.precision)
    values = measure(p, args.seeds)
    if values.empty:
        print("no fit succeeded: nothing to measure", file=sys.stderr)
        return 1
    by_rule = spread(values, ["metric", "selection"])
    by_metric = spread(values, ["metric"])
    print(f"# Seed-to-seed variation of the per-clip value ({machine_description()}, commit {git_commit()})\n")
    print("Per metric and selection rule: SD across seeds of one clip's value, pooled over designs and clips.\n")
    print(markdown(by_rule, ["metric", "selection", "settings", "pooled_sd", "largest_sd"]) + "\n")
    print(f"Per metric, pooled over every rule; tolerance = {SDS:g} x the pooled SD.\n")
    print(markdown(by_metric, ["metric", "settings", "pooled_sd", "largest_sd", "tolerance"]) + "\n")
    measured = ", ".join(f'"{r["metric"]}": {r["tolerance"]:.3g}' for r in by_metric.to_dict("records"))
    print(f"TOLERANCES = {{{measured}}}  # for dap/claims/compare.py; measured with {args.seeds} seeds, "
          f"{p.iterations} iterations, {p.n_clips} clip(s) of {', '.join(p.datasets)}, {', '.join(p.designs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
