"""CPU cost of today's fit engine (deferred read-back, failure classification, per-fit provenance:
the GPU work of issue 18) against the engine of an earlier commit, and a check that both give the
same fit.

    .venv/bin/python benchmarks/bench_tracking.py                  # against the engine of --before
    .venv/bin/python benchmarks/bench_tracking.py --before a0aee62 --iterations 30 --repeats 5

The engine "before" is the whole ``dap`` package as committed at ``--before``, checked out into a
temporary git worktree and run in a child process; the engine "after" is this checkout's, run the
same way. Children alternate (before, after, before, ...) so that other load on the machine hits both
alike. Two measurements:

1. engine overhead: a fit whose network is one 3x3 conv on a 16 x 16 input, so the time per
   iteration is nearly all bookkeeping (loss check, decode, EMA, scores, oracle): microseconds
   added per iteration, and that as a share of one iteration of the proposed design;
2. a real denoising fit (proposed design, ``--widths``, 0.512 s clip, oracle tracking): seconds per
   iteration before and after, and whether history and outputs are identical.

Prints the results and writes ``results/tracking_overhead.md``. Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child(root: str, what: str, iterations: int, lag: int | None, widths: tuple[int, ...], out: str) -> None:
    """Run one measurement with the ``dap`` package found under ``root``; pickle what it gives to ``out``."""
    sys.path.insert(0, root)
    import numpy as np
    import torch

    try:
        from dap.engine import fit as engine
    except ImportError:  # the reference commit keeps the engine at dap/fit.py
        from dap import fit as engine
    from dap.tasks import denoise

    torch.manual_seed(0)
    if what == "tiny":
        gen = engine.LatentPrior(torch.nn.Conv2d(1, 1, 3, padding=1), (1, 1, 16, 16), seed=0)
        target = torch.linspace(-1, 1, 256).reshape(1, 1, 16, 16)
        ref = target.reshape(1, -1).numpy()
        extra = {} if lag is None else {"read_back_every": lag}  # the option is newer than some engines
        cfg = engine.FitConfig(iterations=iterations, precision="fp32", progress=False, device="cpu", **extra)
        res = engine.fit(gen, lambda p: ((p - target) ** 2).mean(), lambda p: p.reshape(1, -1), cfg,
                         track=lambda w: {"snr": -float(((w - ref) ** 2).mean())})
        result = {"seconds_per_iteration": res.seconds / res.iterations}
    else:  # the proposed design denoising a 0.512 s tone cluster with oracle tracking
        t = np.arange(8192) / 16000
        clean = sum(np.sin(2 * np.pi * f * t) for f in (220, 330, 440)) * np.hanning(8192)
        clean = (clean / np.abs(clean).max()).astype(np.float32)
        noisy = denoise.add_gaussian_noise(clean, 0.1, seed=0)
        cfg = engine.FitConfig(iterations=iterations, precision="auto", progress=False, device="cpu")
        res = denoise.restore(noisy, "dilated_exp_dense", cfg, seed=0, clean=clean, prior_opts={"widths": widths},
                              noise=None)
        result = {"seconds_per_iteration": res.seconds / res.iterations, "history": res.history,
                  "best_iteration": res.best_iteration, "iterations": res.iterations, "outputs": res.outputs}
    with open(out, "wb") as f:
        pickle.dump(result, f)


def measure(root: Path, what: str, args, lag: int | None = None) -> dict:
    """One child run of ``what`` with the package under ``root``."""
    with tempfile.NamedTemporaryFile(suffix=".pkl") as out:
        cmd = [sys.executable, __file__, "--child", str(root), what, "--iterations", str(args.iterations),
               "--tiny-iterations", str(args.tiny_iterations), "--widths", args.widths, "--out", out.name]
        if lag is not None:
            cmd += ["--lag", str(lag)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench_tracking: the {what} fit with the engine under {root} failed:\n"
                             f"{done.stderr[-3000:]}")
        with open(out.name, "rb") as f:
            return pickle.load(f)


def identical(a: dict, b: dict) -> bool:
    import numpy as np
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(a["history"], b["history"], check_exact=True)
    except AssertionError:
        return False
    return (a["best_iteration"] == b["best_iteration"] and a["iterations"] == b["iterations"]
            and sorted(a["outputs"]) == sorted(b["outputs"])
            and all(np.array_equal(a["outputs"][k], b["outputs"][k]) for k in a["outputs"]))


def checkout(rev: str, into: Path) -> Path:
    """A detached worktree of ``rev`` under ``into``; the caller removes it with ``git worktree remove``."""
    path = into / "before"
    done = subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_tracking: cannot check out {rev!r}: {done.stderr.strip()}")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="a0aee62", help="commit whose engine is the reference (default: the last "
                                                         "one before the GPU work of issue 18)")
    ap.add_argument("--iterations", type=int, default=20, help="iterations of the real fit")
    ap.add_argument("--tiny-iterations", type=int, default=400, help="iterations of the bookkeeping-only fit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--widths", default="35,70,140", help="prior widths of the real fit (the paper's by default)")
    ap.add_argument("--child", nargs=2, metavar=("ROOT", "WHAT"), help=argparse.SUPPRESS)
    ap.add_argument("--lag", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(","))
    if args.child:
        root, what = args.child
        iterations = args.tiny_iterations if what == "tiny" else args.iterations
        child(root, what, iterations, args.lag, widths, args.out)
        return 0

    sys.path.insert(0, str(REPO))
    from dap.core.files import atomic_write_text, results_root
    from dap.core.provenance import git_commit, machine_description

    tiny = {"before": [], "after": [], "after, read back every 8": []}
    real = {"before": [], "after": []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        before_root = checkout(args.before, Path(tmp))
        try:
            for _ in range(args.repeats):
                tiny["before"].append(measure(before_root, "tiny", args)["seconds_per_iteration"])
                tiny["after"].append(measure(REPO, "tiny", args)["seconds_per_iteration"])
                tiny["after, read back every 8"].append(measure(REPO, "tiny", args, lag=8)["seconds_per_iteration"])
                a, b = measure(before_root, "real", args), measure(REPO, "real", args)
                real["before"].append(a["seconds_per_iteration"])
                real["after"].append(b["seconds_per_iteration"])
                same = same and identical(a, b)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_root)], cwd=REPO, capture_output=True)
    med = {k: statistics.median(v) for k, v in {**tiny, **{f"real {k}": v for k, v in real.items()}}.items()}
    added_us = 1e6 * (med["after"] - med["before"])
    share = (med["after"] - med["before"]) / med["real after"]
    lines = [f"# Engine overhead on a CPU ({machine_description()}; commit {git_commit()} against {args.before}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
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
