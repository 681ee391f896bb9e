"""How far a per-clip value moves when only the fit's seed changes: the tolerances of
``python -m dap compare`` (:data:`dap.claims.tolerances.TOLERANCES`).

Table 1's fits (Gaussian denoising, notebook 02's settings of ``--profile``, quick by default) or, with
``--notebook 04``, Table 3's (inpainting, notebook 04's settings): each clip gets the notebook's
observation once (its noise, or its gaps), then is fitted under several seeds, so that only the
prior's initialisation and latent input change. The fit seed of seed ``s`` is the one the study
derives from ``s`` (``derive_seed(s, dataset, clip id)``): seed 0 is the notebook's own fit. Per
metric it prints the standard deviation across seeds of the per-clip value (per design, clip and
selection rule), pooled over them, and the tolerance it implies: 2 x the pooled SD (a cell is a mean
over clips, so a re-run's cell moves by less than one clip does; 2 x keeps a margin for that).

    .venv/bin/python benchmarks/seed_variation.py                                      # denoising
    .venv/bin/python benchmarks/seed_variation.py --notebook 04                        # inpainting
    .venv/bin/python benchmarks/seed_variation.py --iterations 3 --seeds 2 --clips 1   # a toy check

Denoising measures PESQ, PSNR and SNR; inpainting Spec. SNR, Env. Dist., SNR and their gap-only views.
Separation (SDR, SIR, SAR) and paper 2's trained models are not measured here: their tolerances in
dap/claims/tolerances.py say so.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from dap.config.profiles import resolve
from dap.core.provenance import git_commit, machine_description
from dap.claims.tolerances import SDS, significant, spread
from dap.engine.fit import SELECTIONS
from dap.priors import ALL_DESIGNS
from dap.studies.common import fit_config, load_normalised, with_observation
# the notebooks' own per-fit and scoring functions, so that seed 0 is each notebook's fit
from dap.studies.denoising import _evaluator, _restore_clip, noisy_observation
from dap.studies.inpainting import _evaluate_clip as _inpaint_score
from dap.studies.inpainting import _inpaint_clip, clip_mask

NOTEBOOKS = {"02": "02_table1_gaussian_denoising", "04": "04_table3_inpainting"}


def fitter(notebook: str, p, config):
    """``fit(clip, design, seed) -> (FitResult, score(estimate) -> {metric: value})`` through the notebook's own
    per-fit and scoring functions (the grid's, so the seed derivation and the observation are the notebook's:
    noise or gaps drawn from ``p.seed``, whatever the fit seed)."""
    if notebook == "04":
        def fit(clip, design, seed):
            masks = {(clip.dataset, clip.id): clip_mask(clip, p)}
            result = _inpaint_clip(clip, design, masks, config, seed, p.frame_rule, p.mismatched_istft, p.prior_opts)
            return result, partial(_inpaint_score, clip, masks=masks)
        return fit

    def fit(clip, design, seed):
        observed = with_observation(clip, *noisy_observation(clip, "gaussian", p, None))
        result = _restore_clip(observed, design, config, seed, p.mismatched_istft, p.prior_opts)
        return result, partial(_evaluator(clip.dataset, p), clip)
    return fit


def measure(notebook: str, p, seeds: int) -> pd.DataFrame:
    """One row per (data set, clip, design, seed, selection, metric) with its value: the clips, designs
    and fit settings of ``p`` (the notebook's settings), each fitted under ``seeds`` seeds."""
    fit = fitter(notebook, p, fit_config(p, progress=False))
    total = len(p.datasets) * p.n_clips * len(p.designs) * seeds
    print(f"{total} fits: {len(p.datasets)} data set(s) x {p.n_clips} clip(s) x {len(p.designs)} design(s) x "
          f"{seeds} seeds, {p.iterations} iterations, precision {p.precision}", file=sys.stderr)
    out, done, t0 = [], 0, time.perf_counter()
    for dataset in p.datasets:
        for clip in load_normalised(dataset, p.n_clips, p.seed, "embedded", None, p.max_samples):
            for design in p.designs:
                for seed in range(seeds):
                    result, score = fit(clip, design, seed)  # the study derives the fit seed from it
                    done += 1
                    print(f"[{done}/{total}] {dataset}/{clip.id} {design} seed {seed} "
                          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
                    if not result.ok:
                        print(f"  failed: {result.error}", file=sys.stderr)
                        continue
                    for rule in (r for r in SELECTIONS if r in result.outputs):
                        out += [{"dataset": dataset, "clip_id": clip.id, "design": design, "seed": seed,
                                 "selection": rule, "metric": m, "value": v}
                                for m, v in score(result.outputs[rule]).items()]
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame, columns: list[str]) -> str:
    """``table`` as a markdown table of ``columns`` (numbers with 4 significant digits)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in table.to_dict("records"):
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebook", choices=sorted(NOTEBOOKS), default="02",
                    help="02: Table 1's denoising fits (default); 04: Table 3's inpainting fits")
    ap.add_argument("--profile", default="quick", help="the notebook's settings of this profile (default quick)")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: the notebook's (02: speech, digits, piano)")
    ap.add_argument("--designs", nargs="+", choices=ALL_DESIGNS, default=["conv", "dilated_exp_dense"])
    ap.add_argument("--clips", type=int, default=2, help="clips per data set (default 2)")
    ap.add_argument("--seeds", type=int, default=4, help="fit seeds per clip, at least 2 (default 4)")
    ap.add_argument("--iterations", type=int, default=None, help="fit iterations (default: the profile's)")
    ap.add_argument("--precision", default=None, help="auto | fp32 | bf16 | tf32 (default: the profile's)")
    ap.add_argument("--out", type=Path, default=None,
                    help="also keep the rows (rows_<NN>.csv.gz) and this report (seed_variation_<NN>.md) in this "
                         "folder: results/reference/seed_variation is where dap.claims.tolerances reads them")
    args = ap.parse_args(argv)
    if args.seeds < 2 or args.clips < 1:
        ap.error(f"need --seeds >= 2 and --clips >= 1 (got {args.seeds}, {args.clips})")
    chosen = {"datasets": tuple(args.datasets)} if args.datasets else {}
    p = resolve(NOTEBOOKS[args.notebook], args.profile, n_clips=args.clips, designs=tuple(args.designs),
                iterations=args.iterations, precision=args.precision, **chosen)
    started = time.perf_counter()
    values = measure(args.notebook, p, args.seeds)
    if values.empty:
        print("no fit succeeded: nothing to measure", file=sys.stderr)
        return 1
    by_rule = spread(values, ["metric", "selection"])
    by_metric = spread(values, ["metric"])
    measured = ", ".join(f'"{r["metric"]}": {significant(r["tolerance"])}' for r in by_metric.to_dict("records"))
    report = "\n".join([
        f"# Seed-to-seed variation of the per-clip value, notebook {NOTEBOOKS[args.notebook]}", "",
        f"{machine_description()}; commit {git_commit()}; profile {args.profile}; {args.seeds} seeds, "
        f"{p.iterations} iterations, {p.n_clips} clip(s) of {', '.join(p.datasets)}; designs "
        f"{', '.join(p.designs)}; precision {p.precision}; {time.perf_counter() - started:.0f} s.", "",
        "Per metric and selection rule: SD across seeds of one clip's value, pooled over designs and clips.", "",
        markdown(by_rule, ["metric", "selection", "settings", "pooled_sd", "largest_sd"]), "",
        f"Per metric, pooled over every rule; tolerance = {SDS:g} x the pooled SD.", "",
        markdown(by_metric, ["metric", "settings", "pooled_sd", "largest_sd", "tolerance"]), "",
        f"TOLERANCES = {{{measured}}}  # what dap/claims/tolerances.py keeps (the larger where notebooks share a metric)",
        ""])
    print(report)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        values.to_csv(args.out / f"rows_{args.notebook}.csv.gz", index=False,
                      compression={"method": "gzip", "mtime": 0})
        (args.out / f"seed_variation_{args.notebook}.md").write_text(report)
        print(f"rows and report kept in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
