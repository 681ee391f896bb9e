"""The benchmark script runs end to end at a toy size and writes what README promises (no timing is
asserted: speed is reported by the script, never tested)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_fit_writes_timing_tracking_and_throughput_sections(tmp_path):
    env = dict(os.environ, DAP_RESULTS=str(tmp_path), DAP_PROGRESS="off")
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_fit.py"), "--designs", "conv", "dilated",
           "--precisions", "fp32", "--lengths", "4096", "--warmup", "0", "--repeats", "1", "--throughput", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "benchmarks.md").read_text()
    assert "Matmul probe (GFLOP/s): fp32" in md and "Outside the network" in md
    rows = [line for line in md.splitlines() if line.startswith("| conv |") or line.startswith("| dilated |")]
    assert len(rows) == 2 and all("| 4096 | fp32 |" in r for r in rows)
    assert "## Grid throughput: 2 fits of one clip, 1 iterations each" in md
    grid = md.split("## Grid throughput")[1]
    assert re.search(r"\| one at a time, \d+ threads \| \d+ \| conv \d+\.\d\d, dilated \d+\.\d\d \| 1\.00x \|", grid)
    assert re.search(r"\| 2 worker processes x 1 thread \| \d+ \| conv \d+\.\d\d, dilated \d+\.\d\d \| \d+\.\d\dx \|", grid)


def test_bench_tracking_runs_an_earlier_commits_engine_from_its_own_checkout(tmp_path):
    """The "before" engine runs from a temporary worktree of its commit in a child process, as the
    "after" one runs from this checkout; HEAD against itself gives the same fit, and the worktree is
    removed again. (HEAD, not an older commit: a shallow CI clone may lack the history.)"""
    env = dict(os.environ, DAP_RESULTS=str(tmp_path), DAP_PROGRESS="off")
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_tracking.py"), "--before", "HEAD", "--iterations", "2",
           "--tiny-iterations", "20", "--repeats", "1", "--widths", "4,8,16"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "tracking_overhead.md").read_text()
    assert "against HEAD" in md and "Same history, selected iterates and outputs: yes" in md
    assert len([line for line in md.splitlines() if line.startswith("| bookkeeping only")]) == 3
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True, text=True).stdout
    assert "/before " not in worktrees  # the temporary checkout is removed again


def test_oracle_peak_side_by_side_reports_level_time_and_order(tmp_path):
    """Two settings' rows on one clip: the cheaper one 0.5 dB lower for dense, order changed."""
    import pandas as pd

    def rows(dense, conv, spi):
        return pd.DataFrame({"dataset": "speech", "clip_id": "a", "design": ["dilated_exp_dense", "conv"],
                             "snr_at_peak": [dense, conv], "peak_iteration": [200, 400],
                             "seconds_per_iteration": spi, "peaked": [True, False]})

    paper, half = tmp_path / "paper.csv", tmp_path / "half.csv"
    rows(15.0, 10.0, [0.6, 0.3]).to_csv(paper, index=False)
    rows(14.5, 14.9, [0.2, 0.1]).to_csv(half, index=False)
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_oracle_peak.py"), "--side-by-side",
                          str(paper), str(half)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"\| dilated_exp_dense \|\s+1 \|\s+-0\.5 \|\s+-0\.5 \|\s+0\.33 \|", out.stdout)
    assert "- speech a: order changed (dilated_exp_dense > conv | conv > dilated_exp_dense)" in out.stdout
