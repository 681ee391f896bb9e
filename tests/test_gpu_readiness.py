"""Correct on CUDA, tested on a CPU (issue 18, item 1): no silent CPU fallback for the paper profile,
native-bf16 detection, precision as it ran (TF32 explicit), failure kinds and retries, ok beats
failed, provenance in every row, and tables naming mixed commits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from dap import runner
from dap.config import profiles
from dap.core import device
from dap.data.clip import Clip
from dap.engine.grid import Grid, run_grid
from dap.core.failures import DETERMINISTIC, INFRASTRUCTURE, InfrastructureError, classify
from dap.engine.fit import FitConfig, FitResult, LatentPrior, fit
from dap.core.errors import FitDiverged
from dap.report.tables import commits_note
from dap.core.store import ResultStore


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(device.ALLOW_CPU_PAPER, raising=False)


def test_paper_profile_without_cuda_stops_with_the_wheels_requirement(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(device.DeviceError) as err:
        device.require_gpu_for_paper("paper")
    msg = str(err.value)
    assert torch.__version__ in msg and "compute capability" in msg and device.ALLOW_CPU_PAPER in msg
    if torch.version.cuda:
        assert f"CUDA {torch.version.cuda}" in msg and "driver" in msg
    device.require_gpu_for_paper("quick")  # other profiles run anywhere
    monkeypatch.setenv(device.ALLOW_CPU_PAPER, "1")
    device.require_gpu_for_paper("paper")  # asked for explicitly


def test_run_all_paper_on_a_cpu_fails_fast_unless_allowed(monkeypatch, tmp_path, capsys):
    _no_cuda(monkeypatch)
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    ran = []
    monkeypatch.setattr(runner, "run_notebook", lambda *a, **k: ran.append(a) or {})
    assert runner.main(["--profile", "paper", "00"]) == 2
    assert not ran and "needs a CUDA GPU" in capsys.readouterr().err
    monkeypatch.setattr(runner, "write_summary", lambda *a, **k: None)
    monkeypatch.setattr(runner, "write_claims", lambda *a, **k: tmp_path / "CLAIMS.md")
    monkeypatch.setattr(runner, "run_notebook", lambda book, profile, params, timeout, *a, **k: ran.append(timeout) or {
        "notebook": book.stem, "profile": profile, "status": "ok", "seconds": 0.0, "peak_rss_mb": 0.0,
        "error": "", "log": "x", "finished": ""})
    assert runner.main(["--profile", "paper", "--allow-cpu", "--no-plan", "00"]) == 0
    assert ran == [None]  # and the paper profile has no cell timeout
    assert runner.main(["--profile", "quick", "--no-plan", "00"]) == 0 and ran[-1] == 4 * 3600


def test_no_cell_timeout_reaches_papermill_for_none(monkeypatch, tmp_path):
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    commands = []
    real_popen = runner.subprocess.Popen

    class Done:  # papermill is not started: only its command line is kept
        def __init__(self, cmd, **kw):
            commands.append(cmd)
            self.child = real_popen(["touch", cmd[4]])  # the "executed notebook"; kept: reaped by wait4 only
            self.pid = self.child.pid

        def kill(self):
            pass

    monkeypatch.setattr(runner.subprocess, "Popen", Done)
    book = runner.list_notebooks(["00"])[0]
    for timeout in (None, 60):
        runner.run_notebook(book, "smoke", {}, timeout, tmp_path, progress_every=0)
    assert "--execution-timeout" not in commands[0]
    assert commands[1][commands[1].index("--execution-timeout") + 1] == "60"


def test_bf16_needs_native_units_and_tf32_is_never_silent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for cap, want in (((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")):  # T4 emulates bf16: fp32
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=cap: c)
        assert device.resolve_precision("auto", "cuda") == want
        assert FitConfig(precision="auto").resolved_precision(torch.device("cuda")) == want
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (7, 5))
    with pytest.raises(device.DeviceError, match="tf32"):
        device.resolve_precision("tf32", "cuda")
    with pytest.raises(device.DeviceError, match="tf32"):
        device.resolve_precision("tf32", "cpu")
    with pytest.raises(device.DeviceError, match="precision must be one of"):
        device.resolve_precision("fp16", "cpu")


def test_precision_mode_sets_tf32_explicitly_and_restores_it():
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # CUDA's default for convs
        with device.precision_mode("fp32", "cuda"):
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        with device.precision_mode("tf32", "cuda"):
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_fits_use_deterministic_algorithms_and_restore_the_flags(monkeypatch):
    """Identical rows after a resume need deterministic kernels on CUDA (the flags are settable on a CPU)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    with device.precision_mode("fp32", "cuda"):
        assert cudnn.deterministic and not cudnn.benchmark and torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # an op without one warns, never fails a fit
        import os
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == device.CUBLAS_DETERMINISTIC_WORKSPACE
    assert (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled()) == before
    with device.precision_mode("bf16", "cuda", deterministic=False):
        assert not cudnn.deterministic and not torch.are_deterministic_algorithms_enabled()
    with device.precision_mode("fp32", "cpu"):  # a CPU's kernels are deterministic already: nothing set
        assert torch.are_deterministic_algorithms_enabled() == before[2]


def test_deterministic_upsampling_is_exactly_bilinear_with_the_same_gradient():
    """The priors' x2 upsampling on CUDA with deterministic algorithms: a formula, equal to
    ``F.interpolate`` (values and gradients) for even and odd sizes and a size of one."""
    import torch.nn.functional as F
    from dap.priors.blocks import Upsample2x, _bilinear_2x

    for shape in [(2, 3, 5, 7), (1, 2, 1, 4), (1, 1, 8, 2)]:
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        formula = _bilinear_2x(_bilinear_2x(x, -2), -1)
        assert formula.shape == reference.shape
        assert torch.allclose(formula, reference, atol=1e-12)
        g = torch.randn_like(reference)
        assert torch.allclose(torch.autograd.grad(formula, x, g)[0], torch.autograd.grad(reference, x, g)[0], atol=1e-12)
        assert torch.equal(Upsample2x()(x), reference)  # off CUDA: F.interpolate itself


def test_failures_are_classified():
    from concurrent.futures.process import BrokenProcessPool

    assert classify(FitDiverged("loss is nan")) == DETERMINISTIC
    assert classify(ValueError("a bug")) == DETERMINISTIC
    assert classify(RuntimeError("shape mismatch")) == DETERMINISTIC
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")) == INFRASTRUCTURE
    assert classify(RuntimeError("CUDA error: an illegal memory access was encountered")) == INFRASTRUCTURE
    assert classify(RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")) == INFRASTRUCTURE
    assert classify(BrokenProcessPool("a worker died")) == INFRASTRUCTURE
    assert classify(MemoryError()) == INFRASTRUCTURE


def _clip(i: int) -> Clip:
    return Clip(id=f"c{i}", dataset="digits", audio=np.zeros(64, dtype=np.float32))


def _result() -> FitResult:
    return FitResult(outputs={"last": np.zeros((1, 64), np.float32)}, best_iteration={"last": 1},
                     history=pd.DataFrame({"iteration": [1], "loss": [1.0]}), seconds=0.0, iterations=1,
                     device="cpu", precision="fp32")


class FlakyFit:
    """Raises ``error`` on the first ``fails`` calls per fit, then succeeds."""

    def __init__(self, error: Exception, fails: int):
        self.error, self.fails, self.calls = error, fails, {}

    def __call__(self, clip, design):
        n = self.calls[clip.id, design] = self.calls.get((clip.id, design), 0) + 1
        if n <= self.fails:
            raise self.error
        return _result()


GRID = Grid(task="t", settings={"iterations": 1}, profile="test", seed=0)


def _run(tmp_path, run_fit, **kw):
    return run_grid(ResultStore(tmp_path), GRID, [_clip(0), _clip(1)], ["conv"], run_fit,
                    lambda clip, est: {"SNR": 1.0}, selections=("last",), keep_audio=False,
                    progress=lambda _: None, **kw)


def test_an_infrastructure_failure_is_retried_and_not_recorded(tmp_path):
    flaky = FlakyFit(RuntimeError("CUDA error: unspecified launch failure"), fails=2)
    rows = _run(tmp_path, flaky, retries=2)
    assert (rows["status"] == "ok").all() and len(rows) == 2 and flaky.calls[("c0", "conv")] == 3
    sticky = FlakyFit(torch.cuda.OutOfMemoryError("CUDA out of memory"), fails=99)
    with pytest.raises(InfrastructureError, match="rerun"):
        _run(tmp_path / "b", sticky, retries=1)
    assert sticky.calls == {("c0", "conv"): 2}  # the grid stopped at the first exhausted fit
    assert not (tmp_path / "b" / "rows.csv").exists()  # never recorded as done
    # a rerun on a healthy machine computes it
    assert (_run(tmp_path / "b", FlakyFit(RuntimeError("x"), fails=0))["status"] == "ok").all()


def test_a_deterministic_failure_is_recorded_once_without_retry(tmp_path):
    bug = FlakyFit(ValueError("a bug inside the task"), fails=99)
    rows = _run(tmp_path, bug, retries=2)
    assert (rows["status"] == "failed").all() and set(bug.calls.values()) == {1}
    assert rows["error"].str.contains("a bug").all()


class CountingThreads:
    """An executor factory for :func:`run_grid`: a thread pool per pass, the fits each pass got."""

    def __init__(self):
        self.passes: list[list] = []

    def __call__(self, workers, threads):
        pool = ThreadPoolExecutor(workers)
        submit, passes = pool.submit, self.passes
        passes.append([])

        def counted(fn, *args):
            passes[-1].append(args[1:])  # (clip, design) of _call_fit(run_fit, clip, design)
            return submit(fn, *args)

        pool.submit = counted
        return pool


def test_an_infrastructure_failure_in_a_worker_is_retried_in_a_fresh_pool(tmp_path):
    executor = CountingThreads()
    oom = FlakyFit(torch.cuda.OutOfMemoryError("CUDA out of memory"), fails=1)  # first try of each fit
    rows = _run(tmp_path, oom, workers=2, retries=2, executor=executor)
    assert [len(p) for p in executor.passes] == [2, 2]  # both fits failed, both went to a fresh pool
    assert (rows["status"] == "ok").all() and len(rows) == 2 and set(oom.calls.values()) == {2}
    sticky = FlakyFit(torch.cuda.OutOfMemoryError("CUDA out of memory"), fails=99)
    with pytest.raises(InfrastructureError, match="rerun"):
        _run(tmp_path / "b", sticky, workers=2, retries=1, executor=CountingThreads())
    assert not (tmp_path / "b" / "rows.csv").exists()


def test_ok_beats_a_later_failed_duplicate(tmp_path):
    store = ResultStore(tmp_path)
    ok = {"fit_id": "f1", "metric": "SNR", "value": 3.0, "status": "ok", "error": ""}
    store.add([ok])
    store.add([{"fit_id": "f1", "metric": "fit", "value": np.nan, "status": "failed", "error": "late duplicate"}])
    rows = ResultStore(tmp_path).rows
    assert list(rows["status"]) == ["ok"] and rows["value"].iloc[0] == 3.0
    store.add([{"fit_id": "f2", "metric": "fit", "status": "failed", "error": "first try"}])
    store.add([{**ok, "fit_id": "f2", "value": 5.0}])  # a success replaces a failure
    rows = ResultStore(tmp_path).rows.set_index("fit_id")
    assert rows.loc["f2", "status"] == "ok" and rows.loc["f2", "value"] == 5.0 and len(rows) == 2


def test_every_fit_row_names_its_device_precision_versions_and_commit(tmp_path):
    rows = _run(tmp_path, FlakyFit(RuntimeError("x"), fails=0))
    for col in ("device", "device_name", "precision", "torch_version", "cudnn_version", "git_commit"):
        assert rows[col].notna().all() and (rows[col].astype(str) != "").all(), col
    assert rows["torch_version"].iloc[0] == torch.__version__


def test_fit_records_the_precision_it_ran_in():
    prior = LatentPrior(torch.nn.Conv2d(1, 1, 3, padding=1), (1, 1, 8, 8), seed=0)
    target = torch.zeros(1, 1, 8, 8)
    result = fit(prior, lambda pred: ((pred - target) ** 2).mean(), lambda pred: pred.reshape(1, -1),
                 FitConfig(iterations=2, precision="fp32", progress=False, device="cpu"))
    assert result.precision == "fp32" and result.device == "cpu"


def test_the_fit_id_includes_the_resolved_precision_and_the_device_class(monkeypatch):
    from dap.core.store import fit_id
    from dap.studies.common import study_setup

    p = profiles.resolve("02_table1_gaussian_denoising", "quick", iterations=3, precision="auto")
    grid = study_setup(p, "denoise-gaussian").grid
    clip = Clip(id="c0", dataset="digits", audio=np.zeros(16), source="embedded")
    here = grid.fit_config(clip, "conv")["precision_class"]
    assert here.split("/")[0] in ("bf16", "fp32") and (here.endswith("/cpu") != torch.cuda.is_available())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # auto on a T4: fp32, and the T4 is named
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (7, 5))
    monkeypatch.setattr(device, "device_name", lambda d="": "Tesla T4")
    on_t4 = grid.fit_config(clip, "conv")
    assert on_t4["precision_class"] == "fp32/Tesla T4" and grid.stamp()["precision_class"] == "fp32/Tesla T4"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(device, "device_name", lambda d="": "NVIDIA H100")
    assert grid.fit_config(clip, "conv")["precision_class"] == "bf16/NVIDIA H100"
    assert fit_id(grid.fit_config(clip, "conv")) != fit_id(on_t4)


def test_a_table_names_mixed_commits():
    one = pd.DataFrame({"fit_id": ["a", "a", "b"], "git_commit": ["c1", "c1", "c1"]})
    assert commits_note(one) == "rows from commit c1"
    mixed = pd.DataFrame({"fit_id": ["a", "a", "b", "c"], "git_commit": ["c1", "c1", "c2", "c1"]})
    note = commits_note(mixed)
    assert "WARNING" in note and "c1 (2 fits)" in note and "c2 (1 fits)" in note
    from dap.studies.common import fit_description

    p = profiles.resolve("02_table1_gaussian_denoising", "quick", precision="auto")
    text = fit_description(p, mixed.assign(precision="bf16", device="cpu", status="ok"))
    assert "WARNING: rows from 2 commits mixed" in text


def test_a_paper_notebook_run_outside_run_all_stops_too(monkeypatch):
    from dap.studies.common import fit_config

    _no_cuda(monkeypatch)
    p = profiles.resolve("02_table1_gaussian_denoising", "paper", iterations=3)
    with pytest.raises(device.DeviceError, match="needs a CUDA GPU"):
        fit_config(p)
    assert fit_config(p.replace(profile="quick")).iterations == 3


def flaky_in_worker(clip, design, markers: str):
    """Module level (spawn workers import it): a CUDA error on the first attempt of each fit."""
    from pathlib import Path

    marker = Path(markers) / f"{clip.id}-{design}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("CUDA error: unspecified launch failure")
    return _result()


def test_infrastructure_failures_in_real_worker_processes_are_retried(tmp_path):
    from functools import partial

    markers = tmp_path / "markers"
    markers.mkdir()
    log = []
    rows = run_grid(ResultStore(tmp_path), GRID, [_clip(0), _clip(1)], ["conv"],
                    partial(flaky_in_worker, markers=str(markers)), lambda clip, est: {"SNR": 1.0},
                    selections=("last",), keep_audio=False, progress=log.append, workers=2)
    assert len(rows) == 2 and (rows["status"] == "ok").all(), rows
    assert any("infrastructure" in line for line in log) and len(list(markers.iterdir())) == 2


def _visible_gpu_after_a_while(_):
    import os
    import time

    time.sleep(1.0)  # long enough that both workers take a task
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_worker_processes_are_spread_over_the_gpus_round_robin(monkeypatch):
    """Several fits per GPU: the grid's worker processes each see one GPU of those this process may use."""
    from dap.engine.grid import gpu_assignment, process_pool

    assert gpu_assignment(5, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3", "2", "3", "2"]
    assert gpu_assignment(3, {"CUDA_VISIBLE_DEVICES": "1"}) == [None] * 3  # one GPU: nothing to choose
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert gpu_assignment(6, {}) == ["0", "1", "2", "3", "0", "1"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # real worker processes, on this CPU
    pool = process_pool(2, 1)
    try:
        seen = list(pool.map(_visible_gpu_after_a_while, range(2)))
    finally:
        pool.shutdown()
    assert sorted(seen) == ["3", "5"]
