"""`python -m dap restore`'s time estimate against its measured wall time, on a noisy sentence: the
estimate as the command line makes it (:func:`dap.cli._estimate`: a probe of this machine, and for the
default prior the discrepancy rule's stop predicted from each window's estimated input SNR), then the
restoration itself (:func:`dap.restore.restore_file` with the same window function), timed. A script,
not a test (a default restoration takes minutes; nothing here is asserted):

    .venv/bin/python benchmarks/bench_restore_estimate.py                       # 1.5 s at 5 and 10 dB
    .venv/bin/python benchmarks/bench_restore_estimate.py --widths 4,8,16 --snrs 5 --out /tmp/e.md

The sentence is embedded speech (its most energetic ``--seconds``) with white Gaussian noise at exactly
each input SNR. Writes ``results/restore_estimate.md``: estimated and measured seconds, their ratio,
and the iterations predicted against those the rule took.
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

from dap import cli, restore
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit, machine_description
from dap.restore.reading import scan
from dap.studies.common import load_normalised
from dap.studies.stopping import corrupt_at_snr


def run_case(clean: np.ndarray, snr: float, seed: int, args, folder: Path) -> dict:
    """Estimate, then restore, ``clean`` + white noise at ``snr`` dB; return the figures."""
    noisy, _ = corrupt_at_snr(clean, "white", snr, seed)
    src, dst = folder / f"noisy_{snr:g}dB.wav", folder / f"restored_{snr:g}dB.wav"
    sf.write(src, noisy, 16000, subtype="FLOAT")
    prior = restore.WindowPrior(widths=args.widths, iterations=args.cap, precision=args.precision)
    info = scan(src)
    fits = restore.estimate_fits(info, "denoise")
    options = argparse.Namespace(task="denoise", design=prior.design, widths=args.widths, precision=args.precision,
                                 device=None)
    t0 = time.perf_counter()
    line, estimate = cli._estimate(info, fits, options, prior, restore.DEFAULT_WINDOW, restore.DEFAULT_OVERLAP)
    probe_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    restore.restore_file(src, dst, process=prior)
    seconds = time.perf_counter() - t0
    return {"snr": snr, "fits": fits, "line": line.splitlines()[-1], "estimated": estimate.seconds, "measured": seconds,
            "probe": probe_s, "predicted": estimate.predicted, "snrs": estimate.snrs,
            "used": [f.iterations for f in prior.fits]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snrs", default="5,10", help="input SNRs in dB, comma separated")
    ap.add_argument("--seconds", type=float, default=1.5, help="sentence length")
    ap.add_argument("--clip", type=int, default=0, help="index of the embedded speech clip (seed 0 order)")
    ap.add_argument("--widths", type=lambda t: tuple(int(v) for v in t.split(",")), default=None)
    ap.add_argument("--cap", type=int, default=None, help=f"iterations cap (default {restore.DEFAULT_MAX_ITERATIONS})")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", default=str(results_root() / "restore_estimate.md"))
    args = ap.parse_args(argv)
    import torch

    samples = int(round(args.seconds * 16000))
    clip = load_normalised("speech", args.clip + 1, 0, "embedded", None, samples)[args.clip]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for snr in (float(s) for s in args.snrs.split(",")):
            r = run_case(clip.audio, snr, 1000 + int(round(10 * snr)), args, Path(tmp))
            rows.append(r)
            print(f"{snr:g} dB: estimated {r['estimated']:.0f} s, measured {r['measured']:.0f} s "
                  f"(x{r['measured'] / r['estimated']:.2f}); iterations predicted "
                  f"{'cap' if r['predicted'] is None else round(r['predicted'])}, used {r['used']}", flush=True)
    width = "the paper's widths (35, 70, 140)" if args.widths is None else f"widths {args.widths}"
    lines = [
        "# `restore`'s time estimate against its wall time", "",
        f"- Command: `{' '.join(['benchmarks/bench_restore_estimate.py'] + (argv if argv is not None else sys.argv[1:]))}`",
        f"- Sentence: embedded speech `{clip.id}`, its most energetic {samples / 16000:.3f} s, peak-normalised; white "
        f"Gaussian noise at exactly the input SNR (seed 1000 + 10 x SNR)",
        f"- Restore: the default window function (`{restore.DEFAULT_DESIGN}`, discrepancy rule), {width}, cap "
        f"{args.cap or restore.DEFAULT_MAX_ITERATIONS}, precision {args.precision}; the estimate is the command "
        f"line's (`dap.cli._estimate`), made just before the restoration on the same machine",
        f"- Machine: {machine_description()}; torch threads {torch.get_num_threads()}; commit {git_commit()}; "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", "",
        "| input SNR (dB) | fits | estimated SNR per window (dB) | iterations predicted | iterations used | "
        "estimated (s) | measured (s) | measured / estimated | estimate's own cost (s) |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        snrs = ", ".join(f"{s:.1f}" for s in r["snrs"]) or "-"
        predicted = "the cap" if r["predicted"] is None else f"{r['predicted']:.0f} (mean)"
        lines.append(f"| {r['snr']:g} | {r['fits']} | {snrs} | {predicted} | {', '.join(map(str, r['used']))} | "
                     f"{r['estimated']:.0f} | {r['measured']:.0f} | {r['measured'] / r['estimated']:.2f} | {r['probe']:.1f} |")
    lines += ["", "The lines restore printed:", ""] + [f"- `{r['line']}`" for r in rows]
    path = atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
