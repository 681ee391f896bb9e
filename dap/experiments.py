"""Run a grid of fits (designs x clips) with a result cache: one row per fit, rule and metric.

A fit whose rows exist in the store is not recomputed (resume after an interruption). A fit
that fails (diverged loss, a bad clip, any error inside the task) is recorded as failed with its
reason, and the grid goes on. Per-fit histories and restored audio are kept next to the rows so
figures can be redrawn without refitting.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from dap.audio import save_audio
from dap.data.clip import Clip
from dap.errors import DapError
from dap.fit import FitResult
from dap.results import ResultStore, atomic_write_text, fit_id, provenance

log = logging.getLogger(__name__)


@dataclass
class Grid:
    """What identifies the fits of one table: the task, its settings and the profile.

    ``settings`` holds everything that changes a fit's outcome (iterations, lr, sigma, precision,
    ...); it goes into each fit's id, so changing any of it never reuses a stale result.
    """

    task: str
    settings: dict
    profile: str
    seed: int = 0

    def fit_config(self, clip: Clip, design: str) -> dict:
        return {"task": self.task, "dataset": clip.dataset, "source": clip.source, "clip_id": clip.id,
                "design": design, "seed": self.seed, **self.settings}


def run_grid(store: ResultStore, grid: Grid, clips: list[Clip], designs: list[str],
             run_fit: Callable[[Clip, str], FitResult],
             evaluate: Callable[[Clip, np.ndarray], dict[str, float]],
             selections: tuple[str, ...] = ("oracle", "last", "ema"), keep_audio: bool = True,
             progress: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every (clip, design) fit not yet in ``store``; return the rows of exactly this grid.

    run_fit(clip, design) -> FitResult; evaluate(clip, waveforms (S, L)) -> {metric: value}.
    """
    wanted = []
    total = len(clips) * len(designs)
    done = 0
    for clip in clips:
        for design in designs:
            cfg = grid.fit_config(clip, design)
            fid = fit_id(cfg)
            wanted.append(fid)
            done += 1
            if store.has(fid):
                continue
            progress(f"[{done}/{total}] {grid.task} {clip.dataset}/{clip.id} {design}")
            rows = _run_one(store, grid, clip, design, fid, run_fit, evaluate, selections, keep_audio)
            store.add(rows)
    rows = store.rows
    return rows[rows["fit_id"].isin(wanted)].reset_index(drop=True)


def _run_one(store, grid, clip, design, fid, run_fit, evaluate, selections, keep_audio) -> list[dict]:
    base = {"fit_id": fid, "task": grid.task, "dataset": clip.dataset, "source": clip.source,
            "clip_id": clip.id, "design": design, "seed": grid.seed, "profile": grid.profile,
            **provenance()}
    t0 = time.perf_counter()
    try:
        result = run_fit(clip, design)
    except DapError as exc:  # bad clip, bad settings: the message is meant for a person
        return [_failed(base, str(exc), time.perf_counter() - t0)]
    except Exception as exc:  # noqa: BLE001 - isolate any failure to its own fit
        log.exception("fit %s failed", fid)
        return [_failed(base, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)]
    common = {**base, "iterations": result.iterations, "seconds": round(result.seconds, 3),
              "device": result.device, "precision": result.precision, **result.extra}
    if not result.ok:
        return [_failed(common, result.error, result.seconds)]
    _save_history(store.folder, fid, result.history)
    rows = []
    for rule in selections:
        if rule not in result.outputs:
            continue
        est = result.outputs[rule]
        if keep_audio:
            _save_outputs(store.folder, fid, rule, est)
        try:
            values = evaluate(clip, est)
            error = ""
        except DapError as exc:
            values, error = {}, str(exc)
            rows.append({**common, "selection": rule, "metric": "evaluation", "value": np.nan,
                         "status": "failed", "error": error})
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
    from dap.audio import load_audio

    files = sorted(Path(folder, "audio").glob(f"{fid}_{rule}_*.flac"))
    if not files:
        raise DapError(f"no saved output for fit {fid} ({rule}) under {folder}/audio")
    return np.stack([load_audio(f, allow_silent=True) for f in files])
