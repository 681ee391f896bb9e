"""Fits of a grid on a Dask ``distributed`` cluster: this machine, a scheduler address, a SLURM
queue, or every GPU of one node.

:func:`cluster_executor` turns a ``cluster`` setting into the executor factory that
:func:`dap.engine.grid.run_grid` takes (``executor=``). The grid's driver (a notebook, ``run_all.sh``) stays
the only writer of the result rows: workers run fits and send back their results, the driver
evaluates and records each as it arrives, so the rows are safe however many machines fit.

``cluster`` values:

* ``"local"``: a ``distributed.LocalCluster`` of worker processes on this machine (``workers``
  processes x ``threads`` torch threads; the dashboard address is printed);
* ``"local-cuda"``: one worker per GPU of this node (``dask_cuda.LocalCUDACluster``, from the
  optional dependency ``dask-cuda``);
* ``"slurm"``: ``dask_jobqueue.SLURMCluster`` jobs of one worker each, sized by the
  ``DAP_SLURM_*`` environment variables (see :func:`slurm_options`);
* ``"tcp://host:port"`` (any scheduler address): an existing cluster.

A worker that dies in the middle of a fit (killed, out of memory) loses nothing: the scheduler runs
that fit again on another worker (up to ``distributed.scheduler.allowed-failures`` times, then the
fit is recorded as failed with the reason ``KilledWorker``), and only the result that arrives is
recorded, once.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import Executor

import distributed

from dap.core.errors import DapError

#: The cluster kinds besides a scheduler address.
KINDS = ("local", "local-cuda", "slurm")
#: How long to wait for a scheduler to answer.
CONNECT_SECONDS = 20


class ClusterError(DapError, ValueError):
    """An unknown cluster setting, or a cluster kind whose package is missing."""


class DaskExecutor(Executor):
    """A ``concurrent.futures.Executor`` over a ``distributed.Client`` (``Client.get_executor()``),
    closing the client (and the cluster it started, if any) on :meth:`shutdown`."""

    def __init__(self, client, cluster=None):
        self.client, self.cluster = client, cluster
        self._executor = client.get_executor(pure=False)  # pure=False: the same fit twice runs twice

    def submit(self, fn, /, *args, **kwargs):
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class FitWorkerSetup(distributed.WorkerPlugin):
    """Worker plugin: each Dask worker (also one restarted after a crash) runs fits with ``threads``
    torch threads (None: torch's default) and without per-iteration progress bars (the driver
    reports per fit)."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def setup(self, worker) -> None:
        import torch  # in the worker process

        os.environ["DAP_PROGRESS"] = "off"
        if self.threads:
            torch.set_num_threads(self.threads)


def cluster_executor(cluster: str, progress=print):
    """The ``executor(workers, threads)`` factory of :func:`dap.engine.grid.run_grid` for ``cluster`` (see
    the module doc). Each call starts (or connects to) the cluster and returns a
    :class:`DaskExecutor`; the grid shuts it down when its pass ends."""
    if cluster not in KINDS and "://" not in cluster:
        raise ClusterError(f"unknown cluster {cluster!r}: use one of {', '.join(KINDS)} or a scheduler "
                           f"address such as tcp://host:8786")

    def factory(workers: int, threads: int) -> DaskExecutor:
        started = None
        if cluster == "local":
            started = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0")
        elif cluster == "local-cuda":
            started = _require("dask_cuda", "dask-cuda").LocalCUDACluster(threads_per_worker=1,
                                                                          dashboard_address=":0")
        elif cluster == "slurm":
            started = slurm_cluster(workers)
        try:
            client = distributed.Client(started if started is not None else cluster, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as exc:  # no scheduler at that address, or it did not answer
            raise ClusterError(f"cannot reach the Dask scheduler {cluster} within {CONNECT_SECONDS} s "
                               f"({' '.join(str(exc).split())}); start it (dask scheduler) or check the "
                               f"address") from None
        # threads: this machine's cores per local worker; elsewhere each worker keeps its own default
        client.register_plugin(FitWorkerSetup(threads if cluster == "local" else None), name="dap-fit-worker")
        progress(f"Dask cluster {cluster}: {len(client.scheduler_info()['workers'])} worker(s) now; "
                 f"dashboard {client.dashboard_link}")
        return DaskExecutor(client, started)

    return factory


def slurm_options(env=os.environ) -> dict:
    """``dask_jobqueue.SLURMCluster`` options of one single-worker job, from the environment:
    ``DAP_SLURM_QUEUE`` (partition), ``DAP_SLURM_ACCOUNT``, ``DAP_SLURM_CORES`` (default 4),
    ``DAP_SLURM_MEMORY`` (default ``16GB``), ``DAP_SLURM_WALLTIME`` (default ``04:00:00``),
    ``DAP_SLURM_GPUS`` (default 1: ``--gres=gpu:N``; 0 for CPU jobs)."""
    gpus = int(env.get("DAP_SLURM_GPUS", "1"))
    return {"queue": env.get("DAP_SLURM_QUEUE"), "account": env.get("DAP_SLURM_ACCOUNT"),
            "cores": int(env.get("DAP_SLURM_CORES", "4")), "processes": 1,
            "memory": env.get("DAP_SLURM_MEMORY", "16GB"), "walltime": env.get("DAP_SLURM_WALLTIME", "04:00:00"),
            "job_extra_directives": [f"--gres=gpu:{gpus}"] if gpus > 0 else []}


def slurm_cluster(jobs: int):
    """``dask_jobqueue.SLURMCluster`` of :func:`slurm_options`, scaled to ``jobs`` jobs."""
    cluster = _require("dask_jobqueue", "dask-jobqueue").SLURMCluster(**slurm_options())
    cluster.scale(jobs=jobs)
    return cluster


def _require(module: str, package: str):
    """``module``, imported on demand: the optional packages of one cluster kind."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ClusterError(f"this cluster kind needs the package {package!r}: pip install {package}") from None
