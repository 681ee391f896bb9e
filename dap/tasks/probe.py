"""This machine's speed, measured: a few fit iterations through the real fitting code.

:func:`time_iteration` runs the task's own fit (:func:`dap.tasks.denoise.restore` for one prior, the
network of denoising, inpainting and the stopping study; :func:`dap.tasks.separate.restore` for the
three priors of a separation fit) on a synthetic clip for a warm-up iteration and a few timed ones, and
returns the median seconds per iteration (forward, loss, read-back, backward, Adam step) after the
warm-up, and apart the time to the end of the first iteration, which builds the prior and the oneDNN /
cuDNN kernels and costs several times a steady one (it matters for fits of a few iterations). On a GPU each timed iteration ends with a synchronisation, which the real fits avoid
(they read back up to 32 iterations late), so the probe errs on the slow side there.

:func:`measure` times a list of :class:`~dap.config.costs.ProbeSpec` and keeps the results in a small
JSON file under the cache folder (``$DAP_CACHE`` or ``~/.cache/dap``, ``probe/``), one file per
machine and code (its name hashes the device, core and thread counts, torch's version and the source
of the fit path), so that a second ``./run_all.sh --plan`` measures nothing; ``reprobe`` measures
again. Timings follow the machine's load at the moment of the probe: a busy machine measures slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dap.config.costs import PROBE_SAMPLES, ProbeSpec
from dap.core.device import device_name
from dap.core.errors import DapError
from dap.core.fingerprint import PAPER1, code_fingerprint
from dap.core.files import atomic_write_text, cache_root
from dap.engine.fit import FitConfig, pick_device
from dap.tasks import denoise, separate

#: Iterations left out (kernel set-up) and iterations timed: the median of three resists one
#: iteration slowed by another process on a shared machine.
WARMUP, TIMED = 1, 3
#: Source files whose change can change a fit's speed: a cache entry is for one version of them.
_CACHE_VERSION = 1


class ProbeError(DapError, RuntimeError):
    """The probe could not time a fit (it diverged, or ended before its iterations)."""


def time_iteration(spec: ProbeSpec, samples: int = PROBE_SAMPLES, device: str | None = None,
                   warmup: int = WARMUP, timed: int = TIMED) -> tuple[float, float]:
    """Seconds per fit iteration of ``spec`` on a ``samples``-long clip, on ``device``.

    Args:
        spec: task, design, prior options and precision (as requested: ``auto`` resolves here).
        samples: clip length at 16 kHz, a multiple of 256.
        device: ``cpu``, ``cuda``... (None: CUDA when available, else the CPU).
        warmup, timed: iterations left out, then timed (at least 1 each).

    Returns:
        ``(steady, first)``: the median seconds of the timed iterations, and the seconds from the
        fit's start to the end of its first iteration (building the prior and the kernels included).
    """
    if warmup < 1 or timed < 1 or samples % 256:
        raise ProbeError(f"probe: warmup and timed must be >= 1 and samples a multiple of 256 "
                         f"(got {warmup}, {timed}, {samples})")
    dev = pick_device(device)
    stamps: list[float] = []

    def stamp() -> bool:  # the engine calls it after every optimiser step
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        stamps.append(time.perf_counter())
        return False

    if spec.task not in ("denoise", "separate"):
        raise ProbeError(f"probe: unknown task {spec.task!r} (denoise or separate)")
    config = FitConfig(iterations=warmup + timed, precision=spec.precision, progress=False, device=str(dev))
    opts = {k: v for k, v in spec.options}
    clean = _signal(samples, 0)
    threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)  # as a grid worker runs (dap.engine.grid.process_pool)
    start = time.perf_counter()
    try:
        if spec.task == "separate":
            refs = np.stack([clean, _signal(samples, 1)])
            result = separate.restore(refs.sum(0), spec.design, config, references=refs, prior_opts=opts,
                                      domain=spec.domain or "magnitude", guard=separate.CollapseGuard(max_restarts=0),
                                      stop=stamp)
        else:
            noisy = clean + 0.1 * np.random.default_rng(0).standard_normal(samples).astype(np.float32)
            result = denoise.restore(noisy, spec.design, config, clean=clean, noise=None, prior_opts=opts, stop=stamp)
    finally:
        torch.set_num_threads(threads)
    if not result.ok or len(stamps) < warmup + timed:
        raise ProbeError(f"probe of {spec.describe()} ended after {len(stamps)} iteration(s): {result.error or 'stopped'}")
    return float(np.median(np.diff(stamps[warmup - 1:]))), stamps[0] - start


def _signal(samples: int, seed: int) -> np.ndarray:
    """A deterministic test signal ``(samples,)`` (harmonic tones under an envelope, peak < 1)."""
    t = np.arange(samples) / 16000
    f0 = 220.0 * (1 + seed)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.3 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


@dataclass
class Speeds:
    """Measured ``(steady, first)`` seconds (:func:`time_iteration`) on :data:`PROBE_SAMPLES`-sample
    clips, by ``spec.key()``. path: the cache file; measured: when the oldest entry used was measured
    (UTC); probed: how many entries this call measured (0: all from the cache)."""

    seconds: dict[str, tuple[float, float]]
    path: Path
    measured: str
    probed: int

    def __call__(self, spec: ProbeSpec) -> tuple[float, float]:
        return self.seconds[spec.key()]


def measure(specs: list[ProbeSpec], reprobe: bool = False, device: str | None = None,
            show: Callable[[str], None] = print) -> Speeds:
    """Seconds per iteration of each of ``specs`` on this machine: from the cache, else probed
    (:func:`time_iteration`) and added to it.

    Args:
        specs: what to time (precisions as they resolve here, so equal fits share an entry).
        reprobe: measure every spec again, whatever the cache holds.
        device: where the fits will run (None: CUDA when available).
        show: gets one line per spec probed.

    Returns:
        The measured :class:`Speeds`.
    """
    dev = pick_device(device)
    path = cache_path(dev)
    cache = _read(path)
    todo = [s for s in dict.fromkeys(specs) if reprobe or s.key() not in cache]
    for k, spec in enumerate(todo, 1):
        show(f"probing {spec.describe()} ({k}/{len(todo)}) ...")
        steady, first = time_iteration(spec, device=str(dev))
        cache[spec.key()] = {"seconds_per_iteration": steady, "first_iteration_seconds": first,
                             "samples": PROBE_SAMPLES, "measured": _now()}
    if todo:
        atomic_write_text(path, json.dumps({"version": _CACHE_VERSION, "machine": _fingerprint(dev),
                                            "entries": cache}, indent=1, sort_keys=True))
    used = {s.key(): cache[s.key()] for s in specs}
    return Speeds({k: (v["seconds_per_iteration"], v["first_iteration_seconds"]) for k, v in used.items()}, path,
                  min((v["measured"] for v in used.values()), default=_now()), len(todo))


def cache_path(device: torch.device) -> Path:
    """The probe's cache file for this machine and code on ``device``."""
    blob = json.dumps(_fingerprint(device), sort_keys=True).encode()
    return cache_root() / "probe" / f"speed-{hashlib.sha256(blob).hexdigest()[:16]}.json"


def _fingerprint(device: torch.device) -> dict:
    """What a measured speed holds for: the device, cores and threads, torch, the fit path's source."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    return {"device": device.type, "model": device_name(str(device)), "cores": os.cpu_count(), "gpus": gpus,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "code": code_fingerprint(PAPER1)}  # the fit path's code: a change of it is measured again


def _read(path: Path) -> dict:
    """The cached entries at ``path`` (empty when absent, unreadable or of another version)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return {k: v for k, v in data["entries"].items()  # a hand-edited or damaged entry is measured again
            if isinstance(v, dict) and isinstance(v.get("measured"), str)
            and all(isinstance(v.get(f), (int, float)) and v[f] > 0
                    for f in ("seconds_per_iteration", "first_iteration_seconds"))}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
