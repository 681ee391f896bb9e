"""CPU cost of the fit engine's deferred read-back (no host sync per iteration on a GPU) against the
engine before it, and a check that both give the same fit.

    .venv/bin/python benchmarks/bench_tracking.py                  # against the engine of --before
    .venv/bin/python benchmarks/bench_tracking.py --before 1fac7ad --iterations 30 --repeats 5

The engine "before" is ``dap/fit.py`` as committed at ``--before`` (read with ``git show``), run in
this process on the same fits. Two measurements, interleaved (before, after, before, ...) so that
other load on the machine hits both alike:

1. engine overhead: a fit whose network is one 3x3 conv on a 16 x 16 input, so the time per
   iteration is nearly all bookkeeping (loss check, decode, EMA, scores, oracle): microseconds
   added per iteration, and that as a share of one iteration of the proposed design;
2. a real denoising fit (proposed design, ``--widths``, 0.512 s clip, oracle tracking): seconds per
   iteration before and after, and whether history and outputs are identical.

Prints the results and writes ``results/tracking_overhead.md``. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dap import fit as after  # noqa: E402
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit, machine_description  # noqa: E402
from dap.tasks import denoise  # noqa: E402


def engine_at(rev: str) -> types.ModuleType:
    """``dap/fit.py`` as committed at ``rev``, loaded as a module of its own."""
    src = subprocess.run(["git", "show", f"{rev}:dap/fit.py"], cwd=REPO, capture_output=True, text=True)
    if src.returncode != 0:
        raise SystemExit(f"bench_tracking: cannot read dap/fit.py at {rev!r}: {src.stderr.strip()}")
    module = types.ModuleType(f"dap_fit_{rev}")
    module.__file__ = f"{rev}:dap/fit.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(src.stdout, module.__file__, "exec"), module.__dict__)
    return module


def tiny_fit(engine, iterations: int, lag: int | None):
    """Seconds per iteration of a fit whose network costs almost nothing (bookkeeping dominates)."""
    torch.manual_seed(0)
    gen = after.LatentPrior(torch.nn.Conv2d(1, 1, 3, padding=1), (1, 1, 16, 16), seed=0)
    target = torch.linspace(-1, 1, 256).reshape(1, 1, 16, 16)
    ref = target.reshape(1, -1).numpy()
    cfg = after.FitConfig(iterations=iterations, precision="fp32", progress=False, device="cpu", read_back_every=lag)
    res = engine.fit(gen, lambda p: ((p - target) ** 2).mean(), lambda p: p.reshape(1, -1), cfg,
                     track=lambda w: {"snr": -float(((w - ref) ** 2).mean())})
    return res.seconds / res.iterations


def real_fit(engine, iterations: int, widths: tuple[int, ...]):
    """The proposed design denoising a 0.512 s tone cluster with oracle tracking (a FitResult)."""
    t = np.arange(8192) / 16000
    clean = sum(np.sin(2 * np.pi * f * t) for f in (220, 330, 440)) * np.hanning(8192)
    clean = (clean / np.abs(clean).max()).astype(np.float32)
    noisy = denoise.add_gaussian_noise(clean, 0.1, seed=0)
    cfg = after.FitConfig(iterations=iterations, precision="auto", progress=False, device="cpu")
    saved = denoise.fit
    denoise.fit = engine.fit
    try:
        return denoise.restore(noisy, "dilated_exp_dense", cfg, seed=0, clean=clean, prior_opts={"widths": widths},
                               noise=None)
    finally:
        denoise.fit = saved


def identical(a, b) -> bool:
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    except AssertionError:
        return False
    return (a.best_iteration == b.best_iteration and a.iterations == b.iterations and sorted(a.outputs) == sorted(b.outputs)
            and all(np.array_equal(a.outputs[k], b.outputs[k]) for k in a.outputs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="1fac7ad", help="commit whose dap/fit.py is the reference (default: "
                                                         "the last one before the deferred read-back)")
    ap.add_argument("--iterations", type=int, default=20, help="iterations of the real fit")
    ap.add_argument("--tiny-iterations", type=int, default=400, help="iterations of the bookkeeping-only fit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--widths", default="35,70,140", help="prior widths of the real fit (the paper's by default)")
    args = ap.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(","))
    before = engine_at(args.before)

    tiny = {"before": [], "after": [], "after, read back every 8": []}
    real = {"before": [], "after": []}
    same = True
    for _ in range(args.repeats):
        tiny["before"].append(tiny_fit(before, args.tiny_iterations, None))
        tiny["after"].append(tiny_fit(after, args.tiny_iterations, None))
        tiny["after, read back every 8"].append(tiny_fit(after, args.tiny_iterations, 8))
        a, b = real_fit(before, args.iterations, widths), real_fit(after, args.iterations, widths)
        real["before"].append(a.seconds / a.iterations)
        real["after"].append(b.seconds / b.iterations)
        same = same and identical(a, b)
    med = {k: statistics.median(v) for k, v in {**tiny, **{f"real {k}": v for k, v in real.items()}}.items()}
    added_us = 1e6 * (med["after"] - med["before"])
    share = (med["after"] - med["before"]) / med["real after"]
    lines = [f"# Engine read-back overhead on a CPU ({machine_description()}; torch threads {torch.get_num_threads()}; "
             f"commit {git_commit()} against {args.before}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             "| fit | engine | median s/iteration over repeats |", "|---|---|---|"]
    lines += [f"| bookkeeping only ({args.tiny_iterations} it) | {k} | {statistics.median(v):.6f} |" for k, v in tiny.items()]
    lines += [f"| proposed design, widths {widths}, 0.512 s ({args.iterations} it) | {k} | {statistics.median(v):.4f} |"
              for k, v in real.items()]
    lines += ["", f"Added engine time per iteration (bookkeeping-only fit, read back every iteration as on a CPU): "
                  f"{added_us:+.1f} us = {100 * share:+.3f} % of one iteration of the real fit "
                  f"(real fit measured directly: {100 * (med['real after'] / med['real before'] - 1):+.1f} %, within "
                  f"the machine's noise). Same history, selected iterates and outputs: {'yes' if same else 'NO'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(results_root() / "tracking_overhead.md", text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
