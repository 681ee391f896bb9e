"""The grid on a real Dask cluster (``distributed.LocalCluster``, 2 worker processes): the same rows
as one process, and a worker killed mid-fit (SIGKILL) loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from dap import metrics
from dap.engine.cluster import ClusterError, cluster_executor, slurm_options
from dap.core.store import ResultStore
from dap.data.clip import Clip
from dap.engine.fit import FitConfig
from dap.engine.grid import Grid, run_grid
from dap.tasks import denoise

L = 4096
TINY = {"widths": (4, 8, 16)}
GRID = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
KEY = ["fit_id", "selection", "metric"]


def _clip(i: int) -> Clip:
    t = np.arange(L) / 16000
    audio = (np.sin(2 * np.pi * (200 + 50 * i) * t) * np.hanning(L)).astype(np.float32)
    return Clip(id=f"c{i}", dataset="digits", audio=audio / np.abs(audio).max())


def tiny_fit(clip, design):
    """Module level, so that a worker process can import it."""
    noisy = denoise.add_gaussian_noise(clip.audio, 0.1, seed=0)
    cfg = FitConfig(iterations=3, precision="fp32", progress=False, device="cpu")
    return denoise.restore(noisy, design, cfg, seed=0, clean=clip.audio, prior_opts=TINY)


class KillsItsWorkerOnce:
    """``tiny_fit``, except that the first attempt at clip ``victim`` SIGKILLs the worker process
    running it (a marker file records that it happened)."""

    def __init__(self, victim: str, marker: Path):
        self.victim, self.marker = victim, str(marker)

    def __call__(self, clip, design):
        if clip.id == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return tiny_fit(clip, design)


def _evaluate(clip, est):
    return {"SNR": metrics.snr(clip.audio, est[0])}


def _grid(folder, run_fit, **kw):
    return run_grid(ResultStore(folder), GRID, [_clip(i) for i in range(3)], ["conv"], run_fit, _evaluate,
                    progress=lambda _: None, **kw)


def test_an_unknown_cluster_is_refused_with_the_valid_kinds():
    with pytest.raises(ClusterError, match="local, local-cuda, slurm"):
        cluster_executor("lcoal")


def test_an_unreachable_scheduler_is_one_clear_error(monkeypatch):
    monkeypatch.setattr("dap.engine.cluster.CONNECT_SECONDS", 2)
    factory = cluster_executor("tcp://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        factory(2, 1)


def test_slurm_jobs_ask_for_what_the_environment_says():
    from dask_jobqueue import SLURMCluster

    env = {"DAP_SLURM_QUEUE": "gpu", "DAP_SLURM_ACCOUNT": "lab", "DAP_SLURM_CORES": "8", "DAP_SLURM_GPUS": "2",
           "DAP_SLURM_MEMORY": "32GB", "DAP_SLURM_WALLTIME": "02:00:00"}
    with SLURMCluster(**slurm_options(env)) as cluster:  # no job is submitted: the script is only rendered
        script = cluster.job_script()
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:2",
                 "#SBATCH -t 02:00:00"):
        assert line in script, (line, script)
    assert slurm_options({"DAP_SLURM_GPUS": "0"})["job_extra_directives"] == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_local_dask_cluster_gives_the_rows_of_one_process_and_survives_a_killed_worker(tmp_path, one_thread):
    here = _grid(tmp_path / "here", tiny_fit)
    dask = _grid(tmp_path / "dask", tiny_fit, workers=2, executor=cluster_executor("local"))
    a, b = here.sort_values(KEY).reset_index(drop=True), dask.sort_values(KEY).reset_index(drop=True)
    assert a[KEY].equals(b[KEY]) and (b["status"] == "ok").all()
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-4)  # both one thread per fit

    marker = tmp_path / "killed.pid"
    killed = _grid(tmp_path / "killed", KillsItsWorkerOnce("c1", marker), workers=2,
                   executor=cluster_executor("local"))
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker, not this process, died
    c = killed.sort_values(KEY).reset_index(drop=True)
    assert not c.duplicated(KEY).any() and a[KEY].equals(c[KEY]) and (c["status"] == "ok").all()
    np.testing.assert_allclose(a["value"], c["value"], atol=1e-4)


def test_fits_at_once_on_a_cluster(monkeypatch):
    from dap.config import profiles
    from dap.studies.common import fit_workers, grid_executor
    from dap.engine.grid import process_pool

    p = profiles.resolve("02_table1_gaussian_denoising", "smoke").replace(workers=0)  # 0: automatic
    assert grid_executor(p) is process_pool
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    assert fit_workers(p.replace(cluster="local-cuda")) == 4  # one worker per GPU of the node
    assert fit_workers(p.replace(cluster="slurm")) == 4 and fit_workers(p.replace(cluster="slurm", workers=16)) == 16
    assert fit_workers(p.replace(cluster="local")) == (os.cpu_count() or 1)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert fit_workers(p) == 4 and fit_workers(p.replace(workers=8)) == 8  # one per GPU here; 8: two per GPU
    with pytest.raises(ClusterError, match="unknown cluster"):
        grid_executor(p.replace(cluster="lsf"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_study_on_a_local_cluster_gives_the_rows_of_a_study_here(tmp_path, one_thread):
    from dap.config import profiles
    from dap.studies import denoising_study

    p = profiles.resolve("02_table1_gaussian_denoising", "smoke").replace(
        datasets=("digits",), designs=("conv", "dilated"), prior_opts=TINY, iterations=3, precision="fp32")
    here = denoising_study(ResultStore(tmp_path / "here"), p, "gaussian", progress=lambda _: None)
    there = denoising_study(ResultStore(tmp_path / "dask"), p.replace(cluster="local", workers=2), "gaussian",
                            progress=lambda _: None)
    a, b = here.sort_values(KEY).reset_index(drop=True), there.sort_values(KEY).reset_index(drop=True)
    assert a[KEY].equals(b[KEY]) and (b["status"] == "ok").all() and len(a) > 0
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-4)
