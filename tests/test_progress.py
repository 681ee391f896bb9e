"""Progress a person can see: the grid's .progress.json and the runner's terminal lines."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd

from dap import runner
from dap.data.clip import Clip
from dap.engine.grid import Grid, run_grid
from dap.engine.fit import FitResult
from dap.engine.progress import GridProgress, progress_line, read_progress
from dap.core.store import ResultStore


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_grid_progress_counts_and_estimates_the_time_left(tmp_path):
    clock = Clock()
    prog = GridProgress(tmp_path, "denoise-gaussian", 4, clock=clock)
    state = read_progress(tmp_path)[0]
    assert (state["done"], state["total"], state["eta_s"]) == (0, 4, None)
    assert "time left unknown" in progress_line(state)
    prog.start("digits/c0 conv")
    clock.t += 30
    prog.finished("digits/c0 conv")
    prog.start("digits/c1 conv")
    state = read_progress(tmp_path)[0]
    assert (state["done"], state["eta_s"], state["current"]) == (1, 90.0, "digits/c1 conv")  # 30 s x 3 left
    line = progress_line(state, now=clock.t + 5)
    assert line == "denoise-gaussian: 1/4 fits, running digits/c1 conv, elapsed 35s, ~1m30s left"
    assert read_progress(tmp_path, since=clock.t + 1) == []  # only states updated since a moment


def _result() -> FitResult:
    return FitResult(outputs={"last": np.zeros((1, 8), np.float32)}, best_iteration={"last": 1},
                     history=pd.DataFrame({"iteration": [1], "loss": [1.0]}), seconds=0.0, iterations=1,
                     device="cpu", precision="fp32")


def test_run_grid_writes_its_progress(tmp_path):
    seen = []

    def run_fit(clip, design):
        seen.append(read_progress(tmp_path)[0])
        return _result()

    clips = [Clip(id=f"c{i}", dataset="digits", audio=np.zeros(8, np.float32)) for i in range(3)]
    run_grid(ResultStore(tmp_path), Grid(task="t", settings={}, profile="test"), clips, ["conv"], run_fit,
             lambda clip, est: {"SNR": 0.0}, selections=("last",), keep_audio=False, progress=lambda _: None)
    assert [(s["done"], s["current"]) for s in seen] == [(0, "digits/c0 conv"), (1, "digits/c1 conv"),
                                                         (2, "digits/c2 conv")]
    final = read_progress(tmp_path)[0]
    assert (final["done"], final["total"], final["current"], final["eta_s"]) == (3, 3, "", 0.0)


_WRITER = r"""
import sys, time
from dap.engine.progress import GridProgress
p = GridProgress(sys.argv[1], "inpaint", 3)
for k in range(3):
    p.start(f"speech/c{k} conv")
    time.sleep(0.6)
    p.finished(f"speech/c{k} conv")
"""


def test_the_runner_prints_progress_lines_while_the_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "04_table3_inpainting")],
                            cwd=runner.REPO)
    lines = []
    status, _ = runner._wait_showing_progress(proc, start, 0.1, lines.append)
    assert status == 0
    assert any("inpaint: 0/3 fits, running speech/c0 conv" in ln for ln in lines), lines
    assert any("inpaint: 1/3 fits" in ln and "left" in ln for ln in lines), lines
    assert len(lines) <= 7  # ~18 polls, but a line only when the progress changed (7 states at most)
