"""`python -m dap restore` with its default rule (discrepancy) on embedded speech at several input
SNRs of white noise: output SNR against the input, iterations used, estimated against true noise
level, and the SNR the former fixed budget (last iterate of 200) and the best iterate reached on the
same fit. A script, not a test (it is slow at full width; nothing here is asserted):

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_stopping.py            # full scale
    .venv/bin/python benchmarks/bench_stopping.py --widths 4,8,16 --snrs 10 --cap 3        # seconds

Each case writes the noisy clip to a FLOAT wav, runs :func:`dap.restore.restore_file` with the
command line's window function (:class:`dap.restore.WindowPrior`, defaults unless given), and reads
the restored file back; the clean clip is used only to score (a per-iteration callback records the
SNR of each iterate: it never steers the fit). Writes ``results/stopping_benchmark.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from dap import metrics, noise, restore
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit, machine_description
from dap.studies.common import load_normalised
from dap.studies.stopping import corrupt_at_snr


def run_case(clean: np.ndarray, snr: float, seed: int, args, folder: Path) -> dict:
    """Restore ``clean`` + white noise at ``snr`` dB through ``restore_file``; return the figures."""
    noisy, extra = corrupt_at_snr(clean, "white", snr, seed)
    src, dst = folder / f"noisy_{snr:g}dB.wav", folder / f"restored_{snr:g}dB.wav"
    sf.write(src, noisy, 16000, subtype="FLOAT")
    curve: dict[int, float] = {}
    losses: dict[int, float] = {}

    def on_step(iteration, info):  # scoring only: the fit never sees the clean clip
        curve[iteration] = metrics.snr(clean, info["waveforms"][0] * peak)
        losses[iteration] = info["loss"]

    peak = float(np.abs(noisy).max())  # restore scales each channel by its peak and back
    prior = restore.WindowPrior(design=args.design, iterations=args.cap, selection=args.selection,
                                widths=args.widths, precision=args.precision, on_step=on_step,
                                tolerance=args.tolerance, noise=args.noise)
    t0 = time.perf_counter()
    restore.restore_file(src, dst, process=prior)
    seconds = time.perf_counter() - t0
    out = sf.read(dst, dtype="float32")[0]
    fit = prior.fits[0]
    est = fit.noise
    true_floor = noise.true_loss_floor(noisy / peak, clean / peak)  # the fit's units: the peak-scaled window
    true_sigma = float(np.std(noisy.astype(np.float64) - clean))
    its = sorted(curve)
    best = max(its, key=curve.get) if its else None
    return {"input_snr": extra["input_snr"], "output_snr": metrics.snr(clean, out),
            "gain": metrics.snr(clean, out) - extra["input_snr"], "iterations": fit.iterations,
            "reached": fit.reached, "cap": fit.cap, "kept_input": fit.kept_input, "sigma_est": est.sigma * peak, "sigma_true": true_sigma,
            "level_est_db": 20 * np.log10(est.sigma * peak), "level_true_db": 20 * np.log10(true_sigma),
            "floor_error_db": 10 * np.log10(est.loss_floor / true_floor), "estimator": est.kind,
            "snr_at_200": curve.get(200, float("nan")),
            "best_snr": curve[best] if best else float("nan"), "best_iteration": best or 0,
            "seconds": seconds, "s_per_it": seconds / max(1, fit.iterations),
            "trajectory": [(i, curve[i], losses[i] / est.loss_floor) for i in its if i % 100 == 0 or i == its[-1]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snrs", default="5,10,15,20", help="input SNRs in dB, comma separated")
    ap.add_argument("--clip", type=int, default=0, help="index of the embedded speech clip (seed 0 order)")
    ap.add_argument("--design", default=restore.DEFAULT_DESIGN)
    ap.add_argument("--widths", type=lambda t: tuple(int(v) for v in t.split(",")), default=None)
    ap.add_argument("--cap", type=int, default=None, help=f"iterations cap (default {restore.DEFAULT_MAX_ITERATIONS})")
    ap.add_argument("--selection", default=restore.DEFAULT_SELECTION, choices=restore.BLIND_SELECTIONS)
    ap.add_argument("--tolerance", type=float, default=restore.DEFAULT_TOLERANCE)
    ap.add_argument("--noise", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--seconds", type=float, default=1.024, help="clip length (its most energetic window)")
    ap.add_argument("--out", default=str(results_root() / "stopping_benchmark.md"))
    args = ap.parse_args(argv)
    import torch

    snrs = [float(s) for s in args.snrs.split(",")]
    samples = int(round(args.seconds * 16000 / 256)) * 256
    clip = load_normalised("speech", args.clip + 1, 0, "embedded", None, samples)[args.clip]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, snr in enumerate(snrs):
            r = run_case(clip.audio, snr, 1000 + int(round(10 * snr)), args, Path(tmp))  # same noise in any run
            rows.append(r)
            print(f"input {r['input_snr']:5.2f} dB -> output {r['output_snr']:5.2f} dB ({r['gain']:+.2f}) after "
                  f"{r['iterations']} iterations ({'floor reached' if r['reached'] else 'cap'}); noise "
                  f"{r['level_est_db']:.2f} dB estimated vs {r['level_true_db']:.2f} dB true (floor error "
                  f"{r['floor_error_db']:+.2f} dB, {r['estimator']}); at 200: {r['snr_at_200']:.2f} dB; best "
                  f"{r['best_snr']:.2f} dB at {r['best_iteration']}; {r['s_per_it']:.2f} s/it", flush=True)
    width = "the paper's widths (35, 70, 140)" if args.widths is None else f"widths {args.widths}"
    lines = [
        "# `restore` with the discrepancy rule on embedded speech (white noise)", "",
        f"- Command: `{' '.join(['benchmarks/bench_stopping.py'] + (argv if argv is not None else sys.argv[1:]))}`",
        f"- Clip: embedded speech `{clip.id}` (LJSpeech-like substitute), its most energetic {samples / 16000:.3f} s, "
        f"peak-normalised; white Gaussian noise at exactly the input SNR (seed 1000 + 10 x SNR)",
        f"- Restore: `dap.restore.restore_file` with `WindowPrior(design={args.design!r}, selection={args.selection!r}, "
        f"tolerance={args.tolerance:g}, noise={args.noise!r})`, {width}, cap "
        f"{args.cap or restore.DEFAULT_MAX_ITERATIONS} iterations, precision {args.precision}",
        f"- 'at 200' = SNR of iterate 200 of the same fit (the former default, last of 200), known when the fit "
        f"ran that far; 'best' = best iterate up to the stop (needs the clean clip: an oracle, for reference)",
        f"- Noise level: white-equivalent sigma in dB re full scale of the file; floor error = estimated / true "
        f"loss of a perfect fit",
        f"- Machine: {machine_description()}; torch threads {torch.get_num_threads()}; commit {git_commit()}; "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", "",
        "| input SNR | output SNR | gain | iterations | floor | noise est. (dB) | noise true (dB) | floor error | "
        "SNR at 200 | best (iteration) | s/it |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['input_snr']:.2f} | {r['output_snr']:.2f} | {r['gain']:+.2f} | {r['iterations']} | "
                     f"{'reached' if r['reached'] else ('cap, input kept' if r['kept_input'] else 'cap')} | {r['level_est_db']:.2f} | {r['level_true_db']:.2f} | "
                     f"{r['floor_error_db']:+.2f} | {r['snr_at_200']:.2f} | {r['best_snr']:.2f} ({r['best_iteration']}) | "
                     f"{r['s_per_it']:.2f} |")
    lines += ["", "Trajectories (iteration: SNR of the iterate dB / loss as a multiple of the estimated floor):", ""]
    for r in rows:
        lines.append(f"- {r['input_snr']:.2f} dB input: " + "; ".join(f"{i}: {s:.2f} / {q:.2f}x" for i, s, q in r["trajectory"]))
    path = atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
