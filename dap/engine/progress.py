"""How far a grid is, in a small file a person (or ``run_all.sh``) can read while it runs.

:class:`GridProgress` (written by :func:`dap.engine.grid.run_grid`) keeps ``.progress.json`` in the
notebook's results folder up to date: fits done / total, the fit(s) running, elapsed seconds and an
estimate of the time left (wall seconds per finished fit so far x fits left).
:func:`read_progress` and :func:`progress_line` are what :mod:`dap.runner` polls and prints while
papermill runs the notebook (the fits' own progress bars go only to the log).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dap.core.files import atomic_write_text

PROGRESS_FILE = ".progress.json"


class GridProgress:
    """Progress of one grid of ``total`` pending fits of ``task``, written to ``folder/.progress.json``.

    Writing never fails the grid: a progress file that cannot be written is skipped.
    """

    def __init__(self, folder: str | Path, task: str, total: int, clock=time.time):
        self.path = Path(folder) / PROGRESS_FILE
        self.task, self.total, self.done = task, int(total), 0
        self._clock = clock
        self.started = clock()
        self.current = ""
        if self.total:
            self._write()

    def start(self, label: str) -> None:
        """Fit(s) ``label`` started."""
        self.current = label
        self._write()

    def finished(self, label: str) -> None:
        """Fit ``label`` is recorded."""
        self.done += 1
        self.current = "" if self.done >= self.total else self.current
        self._write(last=label)

    def state(self, last: str = "") -> dict:
        """The dict written to the file (``eta_s`` None until a fit has finished)."""
        now = self._clock()
        elapsed = now - self.started
        left = self.total - self.done
        # wall seconds per finished fit already include the fits running alongside (workers)
        eta = elapsed / self.done * left if self.done else None
        return {"task": self.task, "done": self.done, "total": self.total, "current": self.current,
                "last": last, "started": self.started, "updated": now, "elapsed_s": round(elapsed, 1),
                "eta_s": None if eta is None else round(eta, 1)}

    def _write(self, last: str = "") -> None:
        try:
            atomic_write_text(self.path, json.dumps(self.state(last)))
        except OSError:
            pass


def read_progress(folder: str | Path, since: float = 0.0) -> list[dict]:
    """The progress states under ``folder`` (its ``.progress.json`` and those one level below)
    updated at or after ``since`` (epoch seconds), newest last; unreadable files are skipped."""
    folder = Path(folder)
    states = []
    for path in [folder / PROGRESS_FILE, *folder.glob(f"*/{PROGRESS_FILE}")]:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and float(state.get("updated", 0)) >= since:
            states.append(state)
    return sorted(states, key=lambda s: s["updated"])


def progress_line(state: dict, now: float | None = None) -> str:
    """One terminal line, e.g. ``denoise-gaussian: 3/12 fits, running digits/c1 conv, elapsed 4m10s,
    ~12m30s left``. Elapsed is counted to ``now`` (default: the time of the last update)."""
    elapsed = (now if now is not None else state["updated"]) - state["started"]
    parts = [f"{state['task']}: {state['done']}/{state['total']} fits"]
    if state.get("current"):
        parts.append(f"running {state['current']}")
    parts.append(f"elapsed {_duration(elapsed)}")
    eta = state.get("eta_s")
    if state["done"] >= state["total"]:
        parts.append("grid done")
    else:
        parts.append("time left unknown until a fit finishes" if eta is None else f"~{_duration(eta)} left")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
