"""The live fit session (:class:`LiveFit`): the designs fitted in turn, with snapshots for the UI and a stop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from dap.core.errors import DapError
from dap.core.text import one_line
from dap.explore.problem import Problem
from dap.explore.choices import ExplorerError, Choices
from dap.engine.fit import FitConfig, FitResult
from dap.priors import DESIGN_LABELS, build_prior, count_parameters
from dap.tasks import denoise, inpaint


@dataclass
class Snapshot:
    """The state of a run at one moment (what the UI draws).

    state: ``running``, ``done``, ``stopped`` or ``failed``; design: the design being fitted;
    iteration / total: progress of that design; histories: design -> rows so far (``iteration,
    loss, lr`` and ``snr`` / ``snr_gaps`` / ``psnr`` when a reference exists); current: the
    design's latest output ``(L,)``; seconds_per_iteration: measured on this run; message: one line.
    """

    state: str
    design: str
    iteration: int
    total: int
    histories: dict[str, list[dict]]
    current: np.ndarray | None
    seconds_per_iteration: float
    message: str


class LiveFit:
    """Fit ``designs`` one after the other to ``problem``, reporting every ``update_every`` iterations.

    ``on_update(snapshot)`` is called at iteration 1, every ``settings.update_every`` iterations, at
    each design's last iteration and once at the end (state ``done`` / ``stopped`` / ``failed``).
    :meth:`stop` ends the current fit after its current iteration (what was computed is kept) and
    skips the remaining designs. :meth:`run` works in the calling thread; :meth:`start` in a
    daemon thread (so that a notebook keeps receiving button clicks); :meth:`wait` joins it and
    turns a keyboard interrupt (the kernel's stop button) into :meth:`stop`.
    """

    def __init__(self, problem: Problem, settings: Choices, designs: tuple[str, ...] | None = None,
                 on_update: Callable[[Snapshot], None] | None = None):
        self.problem = problem
        self.settings = settings
        self.designs = tuple(designs or (settings.design,))
        self.on_update = on_update
        self.results: dict[str, FitResult] = {}
        self.histories: dict[str, list[dict]] = {d: [] for d in self.designs}
        self.seconds_per_iteration: dict[str, float] = {}
        self.n_updates = 0
        self.state = "ready"
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: np.ndarray | None = None

    # -- control
    def stop(self) -> None:
        """Ask the running fit to stop after its current iteration."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread:
        """Run in a background daemon thread; returns it."""
        if self.running:
            raise ExplorerError("a fit is already running: stop it first")
        self._thread = threading.Thread(target=self._run_quietly, name="dap-live-fit", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> "LiveFit":
        """Join the background thread. A KeyboardInterrupt while waiting stops the fit cleanly."""
        if self._thread is None:
            return self
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception:  # already recorded in self.state / self.error and reported to on_update
            pass

    # -- the work
    def run(self) -> "LiveFit":
        """Fit every design in the calling thread. Errors are reported (state ``failed``) and raised."""
        self.state = "running"
        try:
            for design in self.designs:
                if self.stopped:
                    break
                self._fit_one(design)
                result = self.results[design]
                if not result.ok:
                    raise DapError(f"{DESIGN_LABELS[design]}: {result.error}")
            self.state = "stopped" if self.stopped else "done"
        except Exception as exc:
            self.state = "failed"
            self.error = one_line(exc)
            self._report(self.designs[-1] if not self.results else list(self.results)[-1], final=True)
            raise
        self._report(list(self.results)[-1] if self.results else self.designs[0], final=True)
        return self

    def _fit_one(self, design: str) -> None:
        s, p = self.settings, self.problem
        config = FitConfig(iterations=s.iterations, lr=s.lr, precision=s.precision, progress=False)
        history = self.histories[design]
        stamps: list[float] = []

        def on_step(it: int, info: dict) -> None:
            stamps.append(time.perf_counter())
            history.append({k: v for k, v in info.items() if k != "waveforms"})
            self._current = info["waveforms"][0]
            if len(stamps) > 2:  # the first iterations include one-off setup costs
                self.seconds_per_iteration[design] = float(np.median(np.diff(stamps[1:])))
            if it == 1 or it % s.update_every == 0 or it == s.iterations:
                self._report(design)

        common = dict(design=design, config=config, seed=s.seed, prior_opts={"widths": s.widths},
                      on_step=on_step, stop=self._stop.is_set)
        if p.task == "inpaint":
            result = inpaint.restore(p.observed, p.mask, clean=p.clean, **common)
        else:
            result = denoise.restore(p.observed, clean=p.clean, **common)
        self.results[design] = result

    def _report(self, design: str, final: bool = False) -> None:
        if self.on_update is None:
            return
        self.n_updates += 1
        hist = self.histories.get(design, [])
        it = hist[-1]["iteration"] if hist else 0
        if final and design in self.results:
            self._current = self.output(design)
        self.on_update(Snapshot(state=self.state if final else "running", design=design, iteration=it,
                                total=self.settings.iterations, histories=self.histories,
                                current=self._current, seconds_per_iteration=self.seconds_per_iteration.get(design, float("nan")),
                                message=self.describe(design, it, final)))

    # -- reading the outcome
    def output(self, design: str | None = None, rule: str | None = None) -> np.ndarray:
        """Restored waveform ``(L,)`` of ``design`` (default: the last one fitted) under ``rule``
        (default ``settings.output``; ``oracle`` falls back to ``last`` without a reference)."""
        design = design or list(self.results)[-1]
        result = self.results[design]
        rule = rule or self.settings.output
        if rule not in result.outputs:
            rule = "last" if "last" in result.outputs else next(iter(result.outputs))
        return result.outputs[rule][0]

    def history(self, design: str) -> pd.DataFrame:
        """Rows of ``design`` so far as a DataFrame (``iteration, loss, lr, snr, ...``)."""
        return pd.DataFrame(self.histories[design])

    def describe(self, design: str, iteration: int, final: bool = False) -> str:
        """One status line: progress, speed and time left, or the outcome, with the current score."""
        if final and self.state == "failed":
            return f"failed: {self.error}"
        label = DESIGN_LABELS[design]
        spi = self.seconds_per_iteration.get(design, float("nan"))
        speed = f", {spi:.2f} s/iteration" if np.isfinite(spi) else ""
        parts = []
        if final:
            n = len(self.results)
            parts.append(f"{self.state}: {n} design{'s' if n != 1 else ''} fitted; {label} "
                         f"reached iteration {iteration}/{self.settings.iterations}{speed}")
        else:
            pos = f" (design {self.designs.index(design) + 1}/{len(self.designs)})" if len(self.designs) > 1 else ""
            left = (self.settings.iterations - iteration) * spi
            eta = f", about {left:.0f} s left" if np.isfinite(left) else ""
            parts.append(f"running {label}{pos}: iteration {iteration}/{self.settings.iterations}{speed}{eta}")
        hist = self.histories.get(design, [])
        key = self.problem.score_key
        if hist and key in hist[-1]:
            value = hist[-1][key]
            if key == "loss":
                parts.append(f"loss {value:.3g} (no clean reference, so no SNR)")
            elif key == "snr_gaps":
                parts.append(f"SNR inside the gaps {_db(value)} dB (empty gaps: 0 dB)")
            else:
                parts.append(f"SNR {_db(value)} dB (noisy input {_db(self.problem.input_snr)} dB)")
        return "; ".join(parts)

    def checks(self, prefix: str = "") -> dict:
        """Named scalars of the run for ``checks.json``: state, designs, iterations, updates, scores."""
        key = self.problem.score_key
        out = {"state": self.state, "n_designs": len(self.results), "n_updates": self.n_updates,
               "clip": self.problem.label, "score": key,
               "iterations_done": min((r.iterations for r in self.results.values()), default=0)}
        if self.problem.clean is not None:
            out["input_snr_db"] = round(self.problem.input_snr, 3)
        for design, result in self.results.items():
            h = result.history
            out[f"{design}/iterations"] = result.iterations
            out[f"{design}/seconds_per_iteration"] = round(self.seconds_per_iteration.get(
                design, result.seconds / max(result.iterations, 1)), 4)
            if key in h and len(h):
                out[f"{design}/last_{key}"] = round(float(h[key].iloc[-1]), 4)
        return {f"{prefix}{k}": v for k, v in out.items()}

    def summary(self) -> pd.DataFrame:
        """One row per fitted design: parameters, iterations, s/iteration, last / best score."""
        rows = []
        key = self.problem.score_key
        for design, result in self.results.items():
            h = result.history
            row = {"design": DESIGN_LABELS[design],
                   "parameters": count_parameters(build_prior(design, widths=self.settings.widths)),
                   "iterations": result.iterations,
                   "s/iteration": round(self.seconds_per_iteration.get(design, result.seconds / max(result.iterations, 1)), 3)}
            if key in h and len(h):
                row[f"last {key}"] = round(float(h[key].iloc[-1]), 2)
                best = int(h[key].idxmax()) if key != "loss" else int(h[key].idxmin())
                row[f"best {key}"] = round(float(h[key].iloc[best]), 2)
                row["best at iteration"] = int(h["iteration"].iloc[best])
            rows.append(row)
        return pd.DataFrame(rows)


def _db(value: float) -> str:
    """``value`` to one decimal, without a "-0.0"."""
    return f"{round(float(value), 1) + 0.0:.1f}"
