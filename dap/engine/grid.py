"""Run a grid of fits (designs x clips) with a result cache: one row per fit, rule and metric.

A fit whose rows exist in the store is not recomputed (resume after an interruption). A fit
that fails deterministically (diverged loss, a bad clip, any error inside the task) is recorded as
failed with its reason, and the grid goes on. A fit that fails for the machine's reasons (a CUDA
error, out of memory: :mod:`dap.core.failures`) is retried up to ``retries`` times and never recorded;
if it still fails the grid stops with :class:`dap.core.failures.InfrastructureError` (rerun to resume).
While a grid runs, ``.progress.json`` in the store's folder says how far it is (:mod:`dap.engine.progress`).
Per-fit histories and restored audio are kept next to the rows so figures can be redrawn without refitting.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import pickle
import time
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from dap.core.audio import load_audio, save_audio
from dap.config.costs import seconds_per_iteration
from dap.data.clip import Clip
from dap.core.device import precision_class
from dap.core.errors import DapError
from dap.core.failures import DETERMINISTIC, INFRASTRUCTURE, InfrastructureError, classify, release_device_memory
from dap.engine.audit_selection import audited
from dap.engine.fit import FitResult
from dap.engine.progress import GridProgress
from dap.core.files import atomic_write_text
from dap.core.fingerprint import PAPER1, code_fingerprint
from dap.core.provenance import provenance
from dap.core.store import ResultStore, fit_id
from dap.core.text import one_line

log = logging.getLogger(__name__)


@dataclass
class Grid:
    """What identifies the fits of one table: the task, its settings and the profile.

    ``settings`` holds everything that changes a fit's outcome (iterations, lr, sigma, precision,
    ...); it goes into each fit's id with the :meth:`stamp` (code and precision class), so changing
    any of it never reuses a stale result.
    """

    task: str
    settings: dict
    profile: str
    seed: int = 0
    #: None: what ``settings["precision"]`` (default ``auto``) resolves to on this machine's device.
    precision_class: str | None = None

    def stamp(self) -> dict:
        """``code`` (paper 1's fingerprint, :mod:`dap.core.fingerprint`) and ``precision_class``
        (:func:`dap.core.device.precision_class`) of this grid's fits: in each fit id and row."""
        return {"code": code_fingerprint(PAPER1),
                "precision_class": self.precision_class or precision_class(self.settings.get("precision", "auto"))}

    def fit_config(self, clip: Clip, design: str) -> dict:
        """The settings that identify the fit of ``design`` on ``clip`` (its fit id hashes them)."""
        return {"task": self.task, "dataset": clip.dataset, "source": clip.source, "clip_id": clip.id,
                "design": design, "seed": self.seed, **self.settings, **self.stamp()}


#: ``executor(workers, threads)`` -> a ``concurrent.futures.Executor`` that runs ``workers`` fits at
#: once with ``threads`` threads each (default :func:`process_pool`; a Dask ``Client.get_executor()``
#: or a thread pool fit the same seam).
ExecutorFactory = Callable[[int, int], Executor]


def process_pool(workers: int, threads: int) -> Executor:
    """The default executor: ``workers`` spawn processes (a fresh interpreter: no inherited thread
    pools) with ``threads`` torch threads each, which exit when this process is gone. On a machine
    with several GPUs the workers are spread over them round-robin (each sees one GPU as
    ``cuda:0``), so ``workers`` = 2 x GPUs runs two fits on every GPU."""
    ctx = multiprocessing.get_context("spawn")
    gpus = ctx.Queue()
    for gpu in gpu_assignment(workers):
        gpus.put(gpu)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(threads, os.getpid(), gpus))


def gpu_assignment(workers: int, env=os.environ) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each of ``workers`` worker processes: the GPUs this
    process may use (its own ``CUDA_VISIBLE_DEVICES``, else every GPU torch counts), round-robin;
    None for every worker when there are fewer than two (nothing to choose)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g.strip() for g in visible.split(",") if g.strip()]
    else:
        import torch

        gpus = [str(k) for k in range(torch.cuda.device_count())]
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[k % len(gpus)] for k in range(workers)]


def run_grid(store: ResultStore, grid: Grid, clips: list[Clip], designs: list[str],
             run_fit: Callable[[Clip, str], FitResult],
             evaluate: Callable[[Clip, np.ndarray], dict[str, float]],
             selections: tuple[str, ...] = ("oracle", "last", "ema", "discrepancy"), keep_audio: bool = True,
             progress: Callable[[str], None] = print, workers: int = 1, retries: int = 2,
             executor: ExecutorFactory = process_pool) -> pd.DataFrame:
    """Run every (clip, design) fit not yet in ``store``; return the rows of exactly this grid.

    run_fit(clip, design) -> FitResult; evaluate(clip, waveforms (S, L)) -> {metric: value}.
    ``workers > 1`` runs independent fits through ``executor(workers, threads)`` (default: that many
    processes with one thread each: on a CPU this gives more fits per hour than one process using
    every core); ``run_fit`` must then be picklable (a module-level function or a
    ``functools.partial`` of one). Each fit's outputs are scored where the fit ran (PESQ and BSS Eval
    cost seconds per fit: in one parent they would serialise a pool of GPU workers), when
    ``evaluate`` can be pickled, else here; the rows are written in this process as each fit
    finishes, so an interruption loses at most the fits in flight.
    ``retries``: how many more times a fit that failed for infrastructure reasons is tried.
    """
    wanted, pending = [], []
    for clip in clips:
        for design in audited(clip, designs):
            fid = fit_id(grid.fit_config(clip, design))
            wanted.append(fid)
            if not store.has(fid) and fid not in {p[2] for p in pending}:
                pending.append((clip, design, fid))
    run = _GridRun(store, grid, _Scorer(evaluate, tuple(selections)), keep_audio, progress,
                   GridProgress(store.folder, grid.task, len(pending)), len(pending))
    # A lone pending fit still runs in a worker with its threads (they decide bf16's reduction order)
    if workers <= 1 or not pending:
        run.serial(pending, run_fit, retries)
    else:
        run.parallel(pending, run_fit, workers, retries, executor)
    rows = store.rows
    return rows[rows["fit_id"].isin(wanted)].reset_index(drop=True)


def _label(clip: Clip, design: str) -> str:
    return f"{clip.dataset}/{clip.id} {design}"


def _infrastructure_error(errors: dict, retries: int) -> InfrastructureError:
    first = next(iter(errors.values()))
    return InfrastructureError(f"{len(errors)} fit(s) failed for infrastructure reasons on {retries + 1} attempts "
                               f"(first: {first}); nothing was recorded for them: fix the machine and rerun "
                               f"the same command, which resumes")


def _expected_cost(clip: Clip, design: str) -> float:
    """Relative cost of one fit, for scheduling: audio length x the design's measured cost per iteration."""
    return len(getattr(clip, "audio", ())) * (seconds_per_iteration(design) or 1.0)


@dataclass
class _GridRun:
    """What every fit of one :func:`run_grid` call shares: where rows go, how they are scored, who
    is told, and how many fits are done of how many."""

    store: ResultStore
    grid: Grid
    scorer: "_Scorer"
    keep_audio: bool
    progress: Callable[[str], None]
    tracker: GridProgress
    total: int
    done: int = 0

    def record(self, clip: Clip, design: str, fid: str, outcome: tuple, note: str | None = "done") -> None:
        """Write the rows of one finished fit (ok or failed) and count it; ``note``: what to report
        (None: nothing, the fit was announced when it started)."""
        self.done += 1
        if note is not None:
            self.progress(f"[{self.done}/{self.total}] {self.grid.task} {clip.dataset}/{clip.id} {design} {note}")
        self.store.add(_rows(self.store, self.grid, clip, design, fid, outcome, self.scorer, self.keep_audio))
        self.tracker.finished(_label(clip, design))

    # ------------------------------------------------------------------ one fit at a time, here
    def recorded_elsewhere(self, clip: Clip, design: str, fid: str) -> bool:
        """Whether another writer on this store (a second driver, another machine) has recorded
        the fit since the grid was planned: asked just before the fit starts, so it is not redone."""
        if not self.store.has(fid):
            return False
        self.done += 1
        self.progress(f"[{self.done}/{self.total}] {self.grid.task} {_label(clip, design)} recorded by another writer")
        self.tracker.finished(_label(clip, design))
        return True

    def serial(self, pending: list, run_fit, retries: int) -> None:
        for clip, design, fid in pending:
            if self.recorded_elsewhere(clip, design, fid):
                continue
            self.progress(f"[{self.done + 1}/{self.total}] {self.grid.task} {clip.dataset}/{clip.id} {design}")
            self.tracker.start(_label(clip, design))
            outcome = self._with_retries(run_fit, clip, design, retries)
            if outcome.kind == INFRASTRUCTURE:
                raise _infrastructure_error({fid: outcome.error}, retries)
            self.record(clip, design, fid, outcome, note=None)

    def _with_retries(self, run_fit, clip: Clip, design: str, retries: int) -> tuple:
        """:func:`_call_fit`, tried again (after freeing cached device memory) while it fails for
        infrastructure reasons, at most ``retries`` more times; returns the last outcome."""
        for attempt in range(retries + 1):
            outcome = _call_fit(run_fit, clip, design, self.scorer)
            if outcome.kind != INFRASTRUCTURE:
                return outcome
            if attempt < retries:
                self.progress(f"{_label(clip, design)}: infrastructure failure ({outcome.error}); "
                              f"retry {attempt + 1}/{retries}")
                release_device_memory()
        return outcome

    # ------------------------------------------------------------------ several at once, in an executor
    def parallel(self, pending: list, run_fit, workers: int, retries: int, executor: ExecutorFactory) -> None:
        """Fits in a pool from ``executor``; rows are written here as each fit finishes.

        A worker that dies (a segfault in a native kernel, the OOM killer) breaks the whole pool. Then
        nothing is recorded for the fits that had not finished; they are run again one at a time, so
        that a fit that kills its worker again is identified exactly (it is the one in flight), recorded
        as failed with the reason, and the rest of the grid completes (a fit that kills its worker when
        run alone, after it broke the pool, is taken to be the fit's own fault, e.g. oneDNN's segfault).
        Fits that fail for infrastructure reasons inside a worker are submitted again in a fresh pool,
        at most ``retries`` more times, then the grid stops with :class:`InfrastructureError`.
        """
        threads = max(1, (os.cpu_count() or 1) // workers)
        self.progress(f"{len(pending)} fits of {self.grid.task} in {workers} worker processes x {threads} thread(s)")
        # Longest fits first: in clip-major order a grid ends with a dense fit running single-threaded
        # for minutes while the other cores idle.
        remaining = sorted(pending, key=lambda item: -_expected_cost(*item[:2]))
        attempts: dict[str, int] = {}
        while remaining:
            finished, broken, infra = self._pool_pass(executor(workers, threads), remaining, run_fit, workers)
            remaining = [item for item in remaining if item[2] not in finished]
            for fid in infra:
                attempts[fid] = attempts.get(fid, 0) + 1
            exhausted = {fid: err for fid, err in infra.items() if attempts[fid] > retries}
            if exhausted:
                raise _infrastructure_error(exhausted, retries)
            if infra and broken is None:
                self.progress(f"{len(infra)} fit(s) failed for infrastructure reasons ({next(iter(infra.values()))}); "
                              f"running them again")
                release_device_memory()
                continue
            if broken is None:
                break
            if workers == 1:  # one fit at a time, in order: the first unfinished one killed its worker
                clip, design, fid = remaining.pop(0)
                outcome = FitOutcome(None, f"the worker process died during the fit ({broken}); rerun this fit "
                                           f"alone to investigate (e.g. -p workers 1 -p precision fp32)", 0.0,
                                     DETERMINISTIC)
                self.record(clip, design, fid, outcome, note="failed: its worker process died")
            else:
                self.progress(f"a worker process died ({broken}); running the {len(remaining)} unfinished fit(s) "
                              f"one at a time to find the one that kills it")
                workers = 1

    def _pool_pass(self, pool: Executor, items: list, run_fit, workers: int) -> tuple[set, str | None, dict]:
        """Run ``items`` in ``pool`` (shut down here); return (fit ids recorded, None or why the pool
        broke, {fit id: error} of the fits that failed for infrastructure reasons, not recorded)."""
        finished: set = set()
        infra: dict[str, str] = {}
        clean = False

        def record(fut, outcome):
            clip, design, fid = futures[fut]
            if outcome.kind == INFRASTRUCTURE:
                self.progress(f"{self.grid.task} {_label(clip, design)}: infrastructure failure ({outcome.error})")
                infra[fid] = outcome.error
                return
            self.record(clip, design, fid, outcome)
            finished.add(fid)

        scorer = self.scorer if self.scorer.portable else None  # None: scored here, in record()
        for clip, design, fid in items:
            if self.recorded_elsewhere(clip, design, fid):
                finished.add(fid)
        try:
            futures = {pool.submit(_call_fit, run_fit, clip, design, scorer): (clip, design, fid)
                       for clip, design, fid in items if fid not in finished}
            self.tracker.start(f"{min(workers, len(items))} fits at once in worker processes")
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except BrokenExecutor as exc:
                    # keep every fit that did finish before the break (as_completed order is arbitrary)
                    for other in futures:
                        if other.done() and not other.cancelled() and other.exception() is None \
                                and futures[other][2] not in finished:
                            record(other, other.result())
                    return finished, one_line(exc) or "BrokenProcessPool", infra
                except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result: record it, go on
                    outcome = FitOutcome(None, f"worker failed: {type(exc).__name__}: {exc}", 0.0, classify(exc))
                if futures[fut][2] not in finished:
                    record(fut, outcome)
            clean = True
            return finished, None, infra
        finally:
            if not clean:  # an interrupt or a broken pool: never wait for the fits in flight
                _terminate_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


def _worker_init(threads: int, parent: int | None = None, gpus=None) -> None:
    gpu = gpus.get(timeout=30) if gpus is not None else None  # put by the parent before the pool started
    if gpu is not None:  # before torch touches CUDA: this worker sees one GPU, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import torch

    os.environ["DAP_PROGRESS"] = "off"  # the parent reports progress per fit
    torch.set_num_threads(threads)      # fits only: no batched linalg.solve runs in a worker
    if parent is not None:
        _exit_with_parent(parent)


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker as soon as the process that started it is gone (killed runner, kernel or
    notebook): an orphaned worker would otherwise finish its fit (minutes) for nobody."""
    import threading

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(every)

    threading.Thread(target=watch, name="dap-parent-watch", daemon=True).start()


class FitOutcome(NamedTuple):
    """What one fit gives back: ``result`` (None when it raised), the ``error`` text, ``seconds``,
    the failure ``kind`` (:func:`dap.core.failures.classify`; "" when it ran) and ``scores``:
    ``{rule: {metric: value} or the evaluation's error text}`` when it was scored where it ran
    (None: score it where the rows are written)."""

    result: FitResult | None
    error: str
    seconds: float
    kind: str
    scores: dict | None = None


@dataclass(frozen=True)
class _Scorer:
    """``evaluate(clip, waveforms) -> {metric: value}`` applied to every kept selection rule of a fit."""

    evaluate: Callable
    selections: tuple[str, ...]

    @property
    def portable(self) -> bool:
        """Whether it can travel to a worker process (a closure cannot: it is then applied here)."""
        try:
            pickle.dumps(self.evaluate)
        except Exception:  # noqa: BLE001 - pickling errors come in many types
            return False
        return True

    def __call__(self, clip: Clip, result: FitResult) -> dict:
        scores: dict = {}
        for rule in self.selections:
            if rule in result.outputs:
                try:
                    scores[rule] = self.evaluate(clip, result.outputs[rule])
                except DapError as exc:  # e.g. PESQ refuses a silent estimate: this rule's row says so
                    scores[rule] = str(exc)
        return scores


def _call_fit(run_fit, clip: Clip, design: str, scorer: _Scorer | None = None) -> FitOutcome:
    """Run one fit, and score its outputs with ``scorer`` when given; never raises. A failure in
    the fit or the scoring is returned with its ``kind`` (``deterministic`` or ``infrastructure``)."""
    t0 = time.perf_counter()
    try:
        result = run_fit(clip, design)
        scores = scorer(clip, result) if scorer is not None and result.ok else None
        return FitOutcome(result, "", time.perf_counter() - t0, "", scores)
    except DapError as exc:  # bad clip, bad settings: the message is meant for a person
        return FitOutcome(None, str(exc), time.perf_counter() - t0, classify(exc))
    except Exception as exc:  # noqa: BLE001 - isolate any failure to its own fit
        log.exception("fit of %s/%s with %s failed", clip.dataset, clip.id, design)
        return FitOutcome(None, f"{type(exc).__name__}: {' '.join(str(exc).split())}", time.perf_counter() - t0,
                          classify(exc))


def _rows(store, grid, clip, design, fid, outcome: FitOutcome, scorer: _Scorer, keep_audio) -> list[dict]:
    result, error, seconds = outcome.result, outcome.error, outcome.seconds
    base = {"fit_id": fid, "task": grid.task, "dataset": clip.dataset, "source": clip.source,
            "clip_id": clip.id, "design": design, "seed": grid.seed, "profile": grid.profile,
            **provenance(), **grid.stamp()}
    if result is None:
        return [_failed(base, error, seconds)]
    common = {**base, "iterations": result.iterations, "seconds": round(result.seconds, 3),
              "device": result.device, "precision": result.precision, **result.extra}
    if not result.ok:
        return [_failed(common, result.error, result.seconds)]
    _save_history(store.folder, fid, result.history)
    scores = outcome.scores if outcome.scores is not None else scorer(clip, result)
    rows = []
    for rule, values in scores.items():
        if keep_audio:
            _save_outputs(store.folder, fid, rule, result.outputs[rule])
        if isinstance(values, str):
            rows.append({**common, "selection": rule, "metric": "evaluation", "value": np.nan,
                         "status": "failed", "error": values})
            continue
        for metric, value in values.items():
            rows.append({**common, "selection": rule, "metric": metric, "value": value,
                         "best_iteration": result.best_iteration.get(rule), "status": "ok", "error": ""})
    return rows


def _failed(base: dict, error: str, seconds: float) -> dict:
    return {**base, "selection": "", "metric": "fit", "value": np.nan, "seconds": round(seconds, 3),
            "status": "failed", "error": error}


def _save_history(folder: Path, fid: str, history: pd.DataFrame) -> None:
    buf = io.StringIO()
    history.to_csv(buf, index=False)
    atomic_write_text(folder / "histories" / f"{fid}.csv", buf.getvalue())


def _save_outputs(folder: Path, fid: str, rule: str, waveforms: np.ndarray) -> None:
    for s, wav in enumerate(np.atleast_2d(waveforms)):
        save_audio(folder / "audio" / f"{fid}_{rule}_{s}.flac", wav, subtype="PCM_24")


def load_history(folder: str | Path, fid: str) -> pd.DataFrame:
    """The per-iteration history of fit ``fid`` saved by :func:`run_grid`."""
    return pd.read_csv(Path(folder) / "histories" / f"{fid}.csv")


def load_output(folder: str | Path, fid: str, rule: str) -> np.ndarray:
    """The restored waveforms ``(S, L)`` of fit ``fid`` under selection ``rule``."""
    files = sorted(Path(folder, "audio").glob(f"{fid}_{rule}_*.flac"))
    if not files:
        raise DapError(f"no saved output for fit {fid} ({rule}) under {folder}/audio")
    return np.stack([load_audio(f, allow_silent=True) for f in files])
