"""benchmarks/gpu_check.py runs on a CPU in its smallest mode, with only what the GPU machine has
(soundfile, pesq, museval, papermill, ipywidgets, librosa, noisereduce blocked at import), says it
is not a GPU, and writes every section of its report. No timing is asserted."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ABSENT_ON_THE_GPU_MACHINE = ("soundfile", "pesq", "museval", "papermill", "ipywidgets", "librosa", "noisereduce")

_BLOCKER = f"""
import importlib.abc, sys
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT_ON_THE_GPU_MACHINE!r}:
            raise ImportError(f"{{name}} is not installed on the GPU machine")
        return None
sys.meta_path.insert(0, _Absent())
"""


@pytest.fixture
def gpu_machine_env(tmp_path):
    """An environment whose Python processes (and their spawned children) cannot import the
    packages the lent GPU machine lacks."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), DAP_RESULTS=str(tmp_path / "results"),
               DAP_PROGRESS="off", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    probe = subprocess.run([sys.executable, "-c", "import soundfile"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not installed on the GPU machine" in probe.stderr  # the blocker works
    return env


@pytest.mark.timeout(300)
def test_gpu_check_runs_on_a_cpu_with_the_gpu_machines_packages(gpu_machine_env, tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--size", "tiny",
                          "--concurrency", "1,2"], env=gpu_machine_env, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "NOT A GPU" in out.stdout.splitlines()[0]
    md = (tmp_path / "results" / "gpu_check.md").read_text()
    assert md.startswith("# GPU check run on a CPU: NOT A GPU") and "error:" not in md, md
    assert "- device: cpu" in md and "torch " in md
    for design in ("conv", "dilated", "dilated_exp", "dilated_exp_dense", "harmonic"):
        row = re.search(rf"^\| {design} \| ([0-9.]+)", md, re.M)
        assert row and math.isfinite(float(row.group(1))) and float(row.group(1)) > 0, design
    assert re.search(r"^\| fp32 \| -?\d+\.\d\d \| \d+ \| -?\d+\.\d\d \|", md, re.M)  # quality, fp32 row
    for task in ("denoise", "inpaint", "separate"):
        assert re.search(rf"^\| {task} \| 2 \| [0-9.]+ \| ok \|$", md, re.M), task
    assert re.search(r"hidden 16, batch 2 x 32 frames x 513 bins: [0-9.]+ ms/step", md)
    for k in (1, 2):
        assert re.search(rf"^\| {k} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| ok \|$", md, re.M), k
    assert re.search(r"Best: [12] fits at once, [0-9.]+ ms per fit-iteration", md)


def test_gpu_check_refuses_bad_concurrency():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--concurrency", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--concurrency needs positive counts" in out.stderr


def test_the_gpu_cost_table_takes_the_checks_numbers(monkeypatch):
    """What gpu_check prints for dap/config/costs.py is a literal the table accepts; a GPU model without a
    measurement has no cost (never a guessed one), the CPU's is the measured table's."""
    import ast

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    from dap.config import costs

    table = {(d, "bf16"): 0.001 * (k + 1) for k, d in enumerate(gpu_check.ALL_DESIGNS)}
    table["harmonic", "bf16"] = float("nan")  # a failed measurement is left out
    monkeypatch.setattr(gpu_check, "device_name", lambda device: "NVIDIA Test GPU")
    lines = gpu_check.costs_entry(table, torch.device("cuda"), "bf16", gpu_check.SIZES["paper"])
    literal = ast.literal_eval("{" + lines[lines.index("```python") + 1] + "}")
    assert list(literal) == ["NVIDIA Test GPU"] and "harmonic" not in literal["NVIDIA Test GPU"]
    assert literal["NVIDIA Test GPU"]["conv"] == 0.001
    assert "Nothing to paste" in gpu_check.costs_entry(table, torch.device("cpu"), "bf16", gpu_check.SIZES["paper"])[0]

    monkeypatch.setattr(costs, "GPU_SECONDS_PER_ITERATION", literal)
    assert costs.seconds_per_iteration("conv", "NVIDIA Test GPU") == 0.001
    assert costs.seconds_per_iteration("conv", "NVIDIA Other GPU") is None
    assert costs.seconds_per_iteration("conv") == costs.CPU_SECONDS_PER_ITERATION["conv"]
