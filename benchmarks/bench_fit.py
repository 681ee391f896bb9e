"""Seconds per fit iteration of each prior design, achieved GFLOP/s against a measured peak, peak
memory, and a full-fit quality check of the fast path (bf16) against fp32.

A script, not a test (speed belongs here, never in timed tests):

    .venv/bin/python benchmarks/bench_fit.py                       # timing, all designs, 1 s clip
    .venv/bin/python benchmarks/bench_fit.py --designs conv --lengths 16384 32768
    .venv/bin/python benchmarks/bench_fit.py --quality 250         # + fp32 vs bf16 full fits
    .venv/bin/python benchmarks/bench_fit.py --throughput 30       # + a grid: 1 fit at a time vs 2 workers

Writes ``results/benchmarks.md`` and prints one summary line per design and precision.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dap import metrics
from dap.core.audio import istft, stft
from dap.data import load_clips
from dap.engine.fit import FitConfig, LatentPrior, bf16_supported, pick_device, to_fast_layout
from dap.priors import ALL_DESIGNS, DESIGNS, build_prior, count_parameters
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit, machine_description
from dap.tasks.denoise import add_gaussian_noise, restore


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Measured matmul throughput in GFLOP/s: the ceiling a convolution could approach."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def iteration_flops(design: str, length: int, device: torch.device) -> float:
    """FLOPs of one forward + backward, counted by torch's FlopCounterMode (fp32, no autocast)."""
    target = stft(np.zeros(length, dtype=np.float32))[None].to(device)
    gen = LatentPrior(build_prior(design), tuple(target.shape), seed=0).to(device)
    with FlopCounterMode(display=False) as counter:
        loss = torch.mean((gen() - target) ** 2)
        loss.backward()
    return float(counter.get_total_flops())


def tracking_ms(length: int, device: torch.device, repeats: int = 20) -> float:
    """Milliseconds per iteration of the fit's work outside the network: decoding the prediction to
    a waveform (iSTFT), copying it to the host and scoring it and its EMA against the reference."""
    ref = np.random.default_rng(0).standard_normal(length).astype(np.float32) * 0.1
    pred = stft(ref)[None].to(device)
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        wav = istft(pred, length).clamp(-1, 1).cpu().numpy()[0]
        for _ in range(2):  # current output and EMA
            metrics.snr(ref, wav), metrics.psnr(ref, wav)
    return (time.perf_counter() - t) / repeats * 1e3


def time_iterations(design: str, length: int, precision: str, device: torch.device, warmup: int, repeats: int):
    """Median seconds per Adam iteration (forward, loss, backward, step) after ``warmup``."""
    target = stft(np.random.default_rng(0).standard_normal(length).astype(np.float32) * 0.1)[None].to(device)
    torch.manual_seed(0)
    gen = to_fast_layout(LatentPrior(build_prior(design), tuple(target.shape), seed=0).to(device), device)
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
           else torch.autocast(device.type, enabled=False))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with ctx:
            pred = gen()
        loss = torch.mean((pred.float() - target) ** 2)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak_mb = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda"
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return statistics.median(times), peak_mb


def quality(design: str, iterations: int, device: torch.device) -> dict:
    """Oracle and last-iterate SNR of the same fit (first embedded digit, sigma 0.1) in fp32 and bf16."""
    clip = load_clips("digits", n=1, seed=0)[0]
    clean = clip.audio / np.abs(clip.audio).max()
    noisy = add_gaussian_noise(clean, 0.1, seed=0)
    out = {}
    for precision in ("fp32", "bf16"):
        res = restore(noisy, design, FitConfig(iterations=iterations, precision=precision, progress=False,
                                                device=str(device)), seed=0, clean=clean)
        out[precision] = {"oracle": metrics.snr(clean, res.outputs["oracle"][0]) if res.ok else float("nan"),
                          "last": metrics.snr(clean, res.outputs["last"][0]) if res.ok else float("nan"),
                          "s_per_it": res.seconds / max(res.iterations, 1), "status": res.status}
    return out


def full_fit_seconds(design: str, iterations: int, threads: int | None = None) -> float:
    """Wall seconds of one real grid fit (first embedded digit, sigma 0.1, default precision, oracle
    tracking every iteration), in a fresh process when called through a worker pool."""
    if threads is not None:
        torch.set_num_threads(threads)
    clip = load_clips("digits", n=1, seed=0)[0]
    clean = clip.audio / np.abs(clip.audio).max()
    res = restore(add_gaussian_noise(clean, 0.1, seed=0), design,
                  FitConfig(iterations=iterations, progress=False), seed=0, clean=clean)
    if not res.ok:
        raise RuntimeError(f"{design}: {res.error}")
    return res.seconds


def throughput_section(designs, iterations: int, workers: int, stamp: str) -> list[str]:
    """The four designs' fits of one clip (a grid row of Table 1) run one at a time with every core,
    then in ``workers`` processes with one thread each (what ``-p workers`` does on a CPU)."""
    t = time.perf_counter()
    serial = [full_fit_seconds(d, iterations) for d in designs]
    serial_wall = time.perf_counter() - t
    threads = max(1, (os.cpu_count() or 1) // workers)
    t = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parallel = list(pool.map(full_fit_seconds, designs, [iterations] * len(designs), [threads] * len(designs)))
    parallel_wall = time.perf_counter() - t
    print(f"grid of {len(designs)} fits x {iterations} its: one at a time {serial_wall:.0f} s, "
          f"{workers} workers x {threads} thread(s) {parallel_wall:.0f} s ({serial_wall / parallel_wall:.2f}x)", flush=True)
    return [f"## Grid throughput: {len(designs)} fits of one clip, {iterations} iterations each", "", stamp, "",
            "Real fits (`dap.tasks.denoise.restore`, default precision, oracle tracking every iteration), "
            "wall time including process start-up and kernel warm-up.", "",
            "| how | wall (s) | per fit: design (s/iteration) | speed-up |", "|---|---|---|---|",
            f"| one at a time, {torch.get_num_threads()} threads | {serial_wall:.0f} | "
            + ", ".join(f"{d} {s / iterations:.2f}" for d, s in zip(designs, serial)) + " | 1.00x |",
            f"| {workers} worker processes x {threads} thread | {parallel_wall:.0f} | "
            + ", ".join(f"{d} {s / iterations:.2f}" for d, s in zip(designs, parallel))
            + f" | {serial_wall / parallel_wall:.2f}x |"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", nargs="*", default=list(ALL_DESIGNS), choices=ALL_DESIGNS,
                    help="timing and quality; the throughput grid takes those of Table 1's grid")
    ap.add_argument("--lengths", nargs="*", type=int, default=[16384], help="clip lengths in samples")
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quality", type=int, default=0, metavar="ITERATIONS",
                    help="run full fp32 and bf16 fits of this many iterations and compare SNR "
                         "(written to results/benchmarks_quality.md, which benchmarks.md includes)")
    ap.add_argument("--throughput", type=int, default=0, metavar="ITERATIONS",
                    help="time a grid of the designs' full fits one at a time and in --workers processes "
                         "(written to results/benchmarks_throughput.md, which benchmarks.md includes)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-timing", action="store_true", help="only the quality / throughput checks")
    args = ap.parse_args(argv)

    device = pick_device()
    stamp = (f"{machine_description()}; torch {torch.__version__}; commit {git_commit()}; "
             f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    quality_md = results_root() / "benchmarks_quality.md"
    throughput_md = results_root() / "benchmarks_throughput.md"
    if args.quality:
        atomic_write_text(quality_md, "\n".join(quality_section(args.designs, args.quality, device, stamp)) + "\n")
    if args.throughput:
        atomic_write_text(throughput_md, "\n".join(
            throughput_section([d for d in args.designs if d in DESIGNS], args.throughput, args.workers, stamp)) + "\n")
    if args.no_timing:
        return 0
    lines = ["# Fit benchmark", "", stamp, ""] + timing_section(args, device)
    for extra in (quality_md, throughput_md):
        if extra.exists():
            lines += ["", extra.read_text().rstrip()]
    path = atomic_write_text(results_root() / "benchmarks.md", "\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


def timing_section(args, device: torch.device) -> list[str]:
    """Seconds per iteration, GFLOP/s and peak memory per design, length and precision."""
    precisions = [p for p in args.precisions if p == "fp32" or bf16_supported(device)]
    peaks = {p: matmul_peak(device, torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    lines = ["Matmul probe (GFLOP/s): " + ", ".join(f"{p} {v:.0f}" for p, v in peaks.items()), "",
             "Outside the network, per iteration (iSTFT, host copy, oracle and EMA scores; not in the "
             "s/iteration below): " + ", ".join(f"{n} samples {tracking_ms(n, device):.1f} ms" for n in args.lengths), "",
             "| design | params | samples | precision | s/iteration | GFLOP/iteration | GFLOP/s | % of matmul peak | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    if device.type == "cpu":
        lines[2:2] = ["Peak memory on a CPU is the process's maximum RSS so far, so it can only grow down the table.", ""]
    for design in args.designs:
        params = count_parameters(build_prior(design))
        for length in args.lengths:
            flops = iteration_flops(design, length, device)
            for precision in precisions:
                s, mem = time_iterations(design, length, precision, device, args.warmup, args.repeats)
                rate = flops / s / 1e9
                lines.append(f"| {design} | {params:,} | {length} | {precision} | {s:.3f} | {flops / 1e9:.1f} | "
                             f"{rate:.0f} | {100 * rate / peaks[precision]:.0f} % | {mem:.0f} |")
                print(f"{design:18s} L={length:6d} {precision}: {s:.3f} s/it, {rate:.0f} GFLOP/s "
                      f"({100 * rate / peaks[precision]:.0f} % of {peaks[precision]:.0f}), peak {mem:.0f} MB", flush=True)
    return lines


def quality_section(designs, iterations: int, device: torch.device, stamp: str) -> list[str]:
    """fp32 against the fast path (bf16 autocast), same clip, seed and iterations, per design."""
    lines = [f"## Quality: fp32 vs bf16, same fit ({iterations} iterations, first embedded digit, sigma 0.1)", "",
             stamp, "",
             "s/it here is each fit's wall time as run (other jobs may have shared the device); the timing "
             "table is the clean measurement.", "",
             "| design | fp32 oracle SNR | bf16 oracle SNR | delta | fp32 last SNR | bf16 last SNR | delta | fp32 s/it | bf16 s/it |",
             "|---|---|---|---|---|---|---|---|---|"]
    for design in designs:
        q = quality(design, iterations, device)
        f, b = q["fp32"], q["bf16"]
        lines.append(f"| {design} | {f['oracle']:.2f} | {b['oracle']:.2f} | {b['oracle'] - f['oracle']:+.2f} | "
                     f"{f['last']:.2f} | {b['last']:.2f} | {b['last'] - f['last']:+.2f} | {f['s_per_it']:.2f} | {b['s_per_it']:.2f} |")
        print(f"{design:18s} quality: oracle SNR fp32 {f['oracle']:.2f} / bf16 {b['oracle']:.2f} dB; "
              f"last fp32 {f['last']:.2f} / bf16 {b['last']:.2f} dB", flush=True)
    return lines


if __name__ == "__main__":
    sys.exit(main())
