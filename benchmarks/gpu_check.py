"""The prepared GPU check: what a person with one GPU runs first (at most ~8 minutes), and what
this repository has not yet measured on a GPU.

    python benchmarks/gpu_check.py                 # paper sizes on CUDA; tiny sizes on a CPU
    python benchmarks/gpu_check.py --size tiny     # seconds, any machine (the test runs this)
    python benchmarks/gpu_check.py --concurrency 1,2,4,8

It reports, and writes to ``results/gpu_check.md``:

1. the device and driver (torch / CUDA / cuDNN, compute capability, memory, ``nvidia-smi``);
2. seconds per fit iteration of every design in each precision the device has natively (fp32 with
   TF32 off, tf32, bf16), measured by the fit engine itself (``dap.engine.fit.fit`` through
   ``dap.tasks.denoise.restore``, oracle scoring included) after a warm-up fit;
3. the bf16-vs-fp32 (and tf32) quality of one short denoising fit of the proposed design (oracle and
   last-iterate SNR; synthetic harmonic clip: the embedded FLAC data needs soundfile);
4. a few iterations of each task (denoise, inpaint, separate) and training steps of paper 2's
   separator at paper size (hidden 513, batch 128, 513 x 256 spectrograms);
5. throughput with 1, 2 and 4 fits at once on the device (spawned processes started together
   behind a barrier), the aggregate ms per fit-iteration against issue 18's ~1 ms target, and what
   the measured rate means for paper 1's ~3.3 M fit-iterations.

It imports only torch, numpy, scipy, pandas (and the ``dap`` modules that need no more), so it runs
on a machine without soundfile, pesq, museval, papermill or ipywidgets. On a CPU it says, first and
in the report's title, that these are not GPU numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # runnable from a plain checkout (no pip install on the GPU machine)
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dap.core.device import device_name, native_bf16  # noqa: E402
from dap.engine.fit import FitConfig  # noqa: E402
from dap.priors import ALL_DESIGNS  # noqa: E402
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit  # noqa: E402

#: Paper 1's work in fit-iterations (issue 18's count of the paper profile) and the target rate.
PAPER1_FIT_ITERATIONS = 3.3e6
TARGET_MS_PER_FIT_ITERATION = 1.0


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is. ``paper``: the papers' sizes (a GPU); ``tiny``: seconds on a CPU."""

    name: str
    samples: int            # clip length (1.024 s = 2 x 512 x 256 spectrogram at paper size)
    prior_opts: dict | None  # None: the paper's widths
    warmup: int
    iterations: int         # timed iterations per design and precision
    quality_iterations: int
    task_iterations: int
    wiass_hidden: int
    wiass_batch: int
    wiass_frames: int
    wiass_steps: int
    throughput_iterations: int


SIZES = {
    "paper": Sizes("paper", 16384, None, 3, 20, 400, 20, 513, 128, 256, 10, 40),
    "tiny": Sizes("tiny", 4096, {"widths": (4, 8, 16)}, 1, 2, 12, 2, 16, 2, 32, 2, 3),
}


def synthetic_clip(samples: int, seed: int = 0) -> np.ndarray:
    """A deterministic speech-like test clip ``(samples,)``: a 140 Hz harmonic series with vibrato
    and a syllable-rate envelope, peak 1 (no audio files needed)."""
    t = np.arange(samples) / 16000
    f0 = 140 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    x = sum(np.sin(k * phase + k) / k for k in range(1, 16))
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t + np.random.default_rng(seed).uniform(0, np.pi)) ** 2
    return (x / np.abs(x).max()).astype(np.float32)


def precisions_here(device: torch.device) -> list[str]:
    """Precisions worth timing on ``device``: fp32 always; tf32 and bf16 where native."""
    if device.type == "cuda" and native_bf16(device):
        return ["fp32", "tf32", "bf16"]
    return ["fp32", "bf16"] if native_bf16(device) else ["fp32"]


# ----------------------------------------------------------------------------- 1. device
def device_section(device: torch.device) -> list[str]:
    """Lines naming the device, driver and library versions."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    lines = [f"- device: {device} ({device_name(str(device))})",
             f"- torch {torch.__version__}, CUDA runtime {torch.version.cuda or 'none'}, cuDNN {cudnn or 'none'}, "
             f"{os.cpu_count()} CPU cores, commit {git_commit()}"]
    if device.type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        lines.append(f"- compute capability {prop.major}.{prop.minor}, {prop.total_memory / 2 ** 30:.0f} GiB, "
                     f"{prop.multi_processor_count} SMs, native bf16: {native_bf16(device)}")
    smi = _nvidia_smi()
    lines.append(f"- nvidia-smi: {smi}" if smi else "- nvidia-smi: not found")
    return lines


def _nvidia_smi() -> str:
    if not shutil.which("nvidia-smi"):
        return ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"failed ({exc})"
    return "; ".join(ln.strip() for ln in out.stdout.splitlines() if ln.strip()) or out.stderr.strip()[:200]


# ----------------------------------------------------------------------------- 2. seconds per iteration
def denoise_fit(design: str, precision: str, iterations: int, sizes: Sizes, device: torch.device):
    """One denoising fit of the synthetic clip at sigma 0.1 (oracle tracking on): a FitResult."""
    from dap.tasks import denoise

    clean = synthetic_clip(sizes.samples)
    noisy = denoise.add_gaussian_noise(clean, 0.1, seed=0)
    cfg = FitConfig(iterations=iterations, precision=precision, progress=False, device=str(device))
    return denoise.restore(noisy, design, cfg, seed=0, clean=clean, prior_opts=sizes.prior_opts, noise=None)


def seconds_per_iteration(design: str, precision: str, sizes: Sizes, device: torch.device) -> tuple[float, str]:
    """Engine seconds per iteration over ``sizes.iterations`` after a warm-up fit; and its status."""
    denoise_fit(design, precision, sizes.warmup, sizes, device)
    res = denoise_fit(design, precision, sizes.iterations, sizes, device)
    return res.seconds / max(res.iterations, 1), res.status if res.ok else f"failed: {res.error}"


def timing_section(sizes: Sizes, device: torch.device, precisions: list[str]) -> tuple[list[str], dict]:
    rows, table = [], {}
    for design in ALL_DESIGNS:
        cells = []
        for precision in precisions:
            try:
                s, status = seconds_per_iteration(design, precision, sizes, device)
            except Exception as exc:  # noqa: BLE001 - a check reports every failure and goes on
                s, status = float("nan"), f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            table[design, precision] = s
            cells.append(f"{1000 * s:.1f}" + ("" if status == "ok" else f" ({status})"))
            print(f"  {design:18s} {precision}: {1000 * s:.1f} ms/iteration {status}", flush=True)
        rows.append(f"| {design} | " + " | ".join(cells) + " |")
    head = ["| design | " + " | ".join(f"{p} ms/it" for p in precisions) + " |",
            "|---|" + "---|" * len(precisions)]
    return head + rows, table


def costs_entry(table: dict, device: torch.device, precision: str, sizes: Sizes) -> list[str]:
    """The line to paste into ``GPU_SECONDS_PER_ITERATION`` of dap/config/costs.py: this GPU's seconds per
    iteration of each design in the precision fits use here (``auto``), at the paper's sizes only."""
    if device.type != "cuda" or sizes.prior_opts is not None:
        return ["Nothing to paste: dap/config/costs.py takes GPU measurements at the paper's sizes only."]
    per = {design: round(table[design, precision], 5) for design in ALL_DESIGNS
           if (design, precision) in table and np.isfinite(table[design, precision])}
    return [f"Seconds per iteration in {precision} (what `precision: auto` runs here), for "
            "`GPU_SECONDS_PER_ITERATION` in dap/config/costs.py:", "", "```python", f"{device_name(str(device))!r}: {per!r},",
            "```"]


# ----------------------------------------------------------------------------- 3. quality
def quality_section(sizes: Sizes, device: torch.device, precisions: list[str]) -> list[str]:
    from dap import metrics

    clean = synthetic_clip(sizes.samples)
    lines = ["| precision | oracle SNR dB | oracle iteration | last SNR dB | ms/it | status |", "|---|---|---|---|---|---|"]
    snrs = {}
    for precision in precisions:
        res = denoise_fit("dilated_exp_dense", precision, sizes.quality_iterations, sizes, device)
        if res.ok:
            snrs[precision] = metrics.snr(clean, res.outputs["oracle"][0])
            lines.append(f"| {precision} | {snrs[precision]:.2f} | {res.best_iteration['oracle']} | "
                         f"{metrics.snr(clean, res.outputs['last'][0]):.2f} | "
                         f"{1000 * res.seconds / res.iterations:.1f} | ok |")
        else:
            lines.append(f"| {precision} | | | | | failed: {res.error} |")
        print(f"  quality {precision}: {lines[-1]}", flush=True)
    if "fp32" in snrs:
        for p in (p for p in snrs if p != "fp32"):
            lines.append(f"\n{p} - fp32 oracle SNR: {snrs[p] - snrs['fp32']:+.2f} dB")
    return lines


# ----------------------------------------------------------------------------- 4. tasks and paper 2
def task_section(sizes: Sizes, device: torch.device, precision: str) -> list[str]:
    from dap.tasks import inpaint, separate

    clean = synthetic_clip(sizes.samples)
    cfg = FitConfig(iterations=sizes.task_iterations, precision=precision, progress=False, device=str(device))
    drums = np.random.default_rng(1).standard_normal(sizes.samples).astype(np.float32)
    drums *= (np.arange(sizes.samples) % 4000 < 600)  # noise bursts: a drum-like second source
    runs = {
        "denoise": lambda: denoise_fit("dilated_exp_dense", precision, sizes.task_iterations, sizes, device),
        "inpaint": lambda: _inpaint(inpaint, clean, cfg, sizes),
        "separate": lambda: _separate(separate, clean, drums, cfg, sizes),
    }
    lines = ["| task | iterations | ms/it | status |", "|---|---|---|---|"]
    for task, run in runs.items():
        try:
            res = run()
            lines.append(f"| {task} | {res.iterations} | {1000 * res.seconds / max(res.iterations, 1):.1f} | "
                         f"{'ok' if res.ok else 'failed: ' + res.error} |")
        except Exception as exc:  # noqa: BLE001
            lines.append(f"| {task} | | | error: {type(exc).__name__}: {' '.join(str(exc).split())[:160]} |")
        print(f"  {lines[-1]}", flush=True)
    return lines


def _inpaint(inpaint, clean, cfg, sizes: Sizes):
    mask = inpaint.GapMask(length=len(clean), spans=((len(clean) // 2, len(clean) // 2 + len(clean) // 10),))
    return inpaint.restore(inpaint.apply_gaps(clean, mask), mask, "dilated_exp_dense", cfg, seed=0, clean=clean,
                           prior_opts=sizes.prior_opts)


def _separate(separate, piano, drums, cfg, sizes: Sizes):
    mixture, sources = separate.make_mixture(piano, drums)
    return separate.restore(mixture, "dilated_exp_dense", cfg, seed=0, references=sources,
                            prior_opts=sizes.prior_opts)


def wiass_section(sizes: Sizes, device: torch.device) -> list[str]:
    """Training steps (AdamW, L1, fp32 as in dap.wiass.train) of paper 2's separator."""
    from dap.wiass.model import PAPER_N_FREQ, InformedSeparator

    torch.manual_seed(0)
    model = InformedSeparator(n_freq=PAPER_N_FREQ, hidden=sizes.wiass_hidden).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
    b, n = sizes.wiass_batch, sizes.wiass_frames
    mix = torch.rand(b, n, PAPER_N_FREQ, device=device)
    tgt = torch.rand(b, n, PAPER_N_FREQ, device=device)
    side = torch.rand(b, 300, 1, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(sizes.wiass_steps + 1):  # the first step is warm-up
        _sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pred, _ = model(mix, side)
        loss = torch.nn.functional.l1_loss(pred, tgt)
        loss.backward()
        opt.step()
        _sync(device)
        if step:
            times.append(time.perf_counter() - t)
    params = sum(p.numel() for p in model.parameters())
    checkpoint_mb = params * 4 * 3 / 2 ** 20  # weights + AdamW's two moments, fp32
    peak = f", peak {torch.cuda.max_memory_allocated(device) / 2 ** 30:.1f} GiB" if device.type == "cuda" else ""
    s = float(np.median(times))
    line = (f"hidden {sizes.wiass_hidden}, batch {b} x {n} frames x {PAPER_N_FREQ} bins: {1000 * s:.1f} ms/step "
            f"({b / s:.0f} fragments/s){peak}; {params / 1e6:.1f} M parameters, ~{checkpoint_mb:.0f} MB per "
            f"checkpoint with the optimiser state")
    print(f"  paper 2: {line}", flush=True)
    return [f"- {line}"]


# ----------------------------------------------------------------------------- 5. throughput
def _throughput_worker(args) -> tuple[float, float, int, str]:
    """One fit in its own process: warm up, wait for the others, time ``iterations`` iterations."""
    design, precision, sizes, device, barrier = args
    denoise_fit(design, precision, sizes.warmup, sizes, torch.device(device))
    barrier.wait()
    t0 = time.time()
    res = denoise_fit(design, precision, sizes.throughput_iterations, sizes, torch.device(device))
    return t0, time.time(), res.iterations, res.status


def throughput_section(sizes: Sizes, device: torch.device, precision: str, counts: list[int]) -> tuple[list[str], dict]:
    ctx = multiprocessing.get_context("spawn")
    lines = ["| fits at once | aggregate fit-iterations/s | ms per fit-iteration (aggregate) | per fit ms/it | status |",
             "|---|---|---|---|---|"]
    rates = {}
    for k in counts:
        with ctx.Manager() as manager:
            barrier = manager.Barrier(k)
            with ctx.Pool(k) as pool:
                out = pool.map(_throughput_worker, [("dilated_exp_dense", precision, sizes, str(device), barrier)] * k)
        start, end = min(o[0] for o in out), max(o[1] for o in out)
        total = sum(o[2] for o in out)
        rates[k] = total / (end - start)
        per_fit = np.mean([(o[1] - o[0]) / o[2] for o in out])
        lines.append(f"| {k} | {rates[k]:.1f} | {1000 / rates[k]:.1f} | {1000 * per_fit:.1f} | "
                     f"{', '.join(sorted(set(o[3] for o in out)))} |")
        print(f"  {lines[-1]}", flush=True)
    best = max(rates, key=rates.get)
    hours = PAPER1_FIT_ITERATIONS / rates[best] / 3600
    lines += ["", f"Best: {best} fits at once, {1000 / rates[best]:.1f} ms per fit-iteration in aggregate "
                  f"({1000 / rates[best] / TARGET_MS_PER_FIT_ITERATION:.1f}x issue 18's ~{TARGET_MS_PER_FIT_ITERATION:g} ms "
                  f"target). At this rate paper 1's ~{PAPER1_FIT_ITERATIONS / 1e6:.1f} M fit-iterations take "
                  f"~{hours:.1f} h (dense design, the costliest of the four; {sizes.name} sizes)."]
    return lines, rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="default: paper on CUDA, tiny on a CPU")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--concurrency", default="1,2,4", help="fits at once to measure, comma separated")
    ap.add_argument("--output", default=None, help="report path (default results/gpu_check.md)")
    args = ap.parse_args(argv)
    try:
        counts = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        ap.error(f"--concurrency takes comma-separated integers, not {args.concurrency!r}")
    if not counts or min(counts) < 1:
        ap.error(f"--concurrency needs positive counts, not {args.concurrency!r}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = SIZES[args.size or ("paper" if device.type == "cuda" else "tiny")]
    on_gpu = device.type == "cuda"
    banner = ("GPU check" if on_gpu else "GPU check run on a CPU: NOT A GPU; these numbers say nothing about a GPU")
    print(banner, flush=True)
    t_all = time.time()
    precisions = precisions_here(device)
    fast = "bf16" if "bf16" in precisions else "fp32"
    sections = [f"# {banner}", "", f"Sizes: `{sizes.name}` ({sizes.samples / 16000:.3f} s clips, priors "
                f"{'of the paper' if sizes.prior_opts is None else sizes.prior_opts}); "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "", "## Device", ""]
    sections += device_section(device)
    timing: dict = {}

    def timed() -> list[str]:
        rows, table = timing_section(sizes, device, precisions)
        timing.update(table)
        return rows

    steps = [("Seconds per fit iteration (engine, oracle scoring included)", timed),
             ("For dap/config/costs.py", lambda: costs_entry(timing, device, fast, sizes)),
             (f"Quality of one {sizes.quality_iterations}-iteration fit of the proposed design (sigma 0.1, synthetic clip)",
              lambda: quality_section(sizes, device, precisions)),
             (f"Tasks, {sizes.task_iterations} iterations each ({fast})", lambda: task_section(sizes, device, fast)),
             ("Paper 2's separator, training steps (fp32)", lambda: wiass_section(sizes, device)),
             (f"Fits at once on the device (dense design, {fast}, {sizes.throughput_iterations} timed iterations each)",
              lambda: throughput_section(sizes, device, fast, counts)[0])]
    for title, run in steps:
        t = time.time()
        print(f"{title} ...", flush=True)
        try:
            body = run()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next section
            body = [f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"]
        sections += ["", f"## {title}", "", *body, "", f"({time.time() - t:.0f} s)"]
    sections += ["", f"Total {time.time() - t_all:.0f} s."]
    out = Path(args.output) if args.output else results_root() / "gpu_check.md"
    atomic_write_text(out, "\n".join(sections) + "\n")
    print(f"wrote {out} in {time.time() - t_all:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
