"""Denoising task and the grid runner: corruption, resume, failure isolation, determinism.
Tiny priors (widths 4/8/16) on 0.26 s clips keep this fast."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dap import metrics
from dap.data.clip import Clip
from dap.engine.grid import Grid, load_history, load_output, run_grid
from dap.engine.fit import FitConfig
from dap.core.store import ResultStore
from dap.tasks import denoise

L = 4096
TINY = {"widths": (4, 8, 16)}


def _clip(i: int) -> Clip:
    t = np.arange(L) / 16000
    audio = (np.sin(2 * np.pi * (200 + 50 * i) * t) * np.hanning(L)).astype(np.float32)
    return Clip(id=f"c{i}", dataset="digits", audio=audio / np.abs(audio).max())


def test_gaussian_noise_is_drawn_once_per_seed():
    x = _clip(0).audio
    a, b, c = (denoise.add_gaussian_noise(x, 0.1, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.std(a - x) == pytest.approx(0.1, rel=0.05)


def test_environmental_noise_hits_the_requested_snr():
    x = _clip(0).audio
    noise = np.random.default_rng(0).standard_normal(3000).astype(np.float32)  # shorter: looped
    for snr_db in (5.0, 9.0):
        noisy = denoise.add_environmental_noise(x, noise, snr_db, seed=3)
        assert metrics.snr(x, noisy) == pytest.approx(snr_db, abs=1e-3)
    assert 5.0 <= denoise.draw_snr_db(7) <= 9.0
    assert denoise.draw_snr_db(7) == denoise.draw_snr_db(7)


def _grid(store, designs=("conv", "dilated_exp_dense"), lr=1e-3, n=2, iterations=4):
    grid = Grid(task="denoise-gaussian", settings={"iterations": iterations, "lr": lr}, profile="test", seed=0)
    calls = []
    clips = [_clip(i) for i in range(n)]

    def run_fit(clip, design):
        calls.append((clip.id, design))
        noisy = denoise.add_gaussian_noise(clip.audio, 0.1, seed=0)
        cfg = FitConfig(iterations=iterations, lr=lr, precision="fp32", progress=False, device="cpu")
        return denoise.restore(noisy, design, cfg, seed=0, clean=clip.audio, prior_opts=TINY)

    def evaluate(clip, est):
        return {"PSNR": metrics.psnr(clip.audio, est[0]), "SNR": metrics.snr(clip.audio, est[0])}

    rows = run_grid(store, grid, clips, list(designs), run_fit, evaluate, progress=lambda _: None)
    return rows, calls


def test_grid_rows_resume_and_saved_outputs(tmp_path):
    rows, calls = _grid(ResultStore(tmp_path))
    assert len(calls) == 4
    assert set(rows["selection"]) == {"oracle", "last", "ema", "discrepancy"} and set(rows["metric"]) == {"PSNR", "SNR"}
    assert len(rows) == 4 * 4 * 2 and (rows["status"] == "ok").all()
    assert rows["iterations"].eq(4).all() and rows["precision"].eq("fp32").all()
    # a rerun (new process: new store object) recomputes nothing and returns the same rows
    again, calls2 = _grid(ResultStore(tmp_path))
    assert calls2 == []
    assert again.sort_values(["fit_id", "selection", "metric"])["value"].tolist() == \
        rows.sort_values(["fit_id", "selection", "metric"])["value"].tolist()
    fid = rows["fit_id"].iloc[0]
    assert len(load_history(tmp_path, fid)) == 4
    assert load_output(tmp_path, fid, "last").shape == (1, L)


def test_same_seed_same_rows(tmp_path):
    a, _ = _grid(ResultStore(tmp_path / "a"), designs=("conv",), n=1)
    b, _ = _grid(ResultStore(tmp_path / "b"), designs=("conv",), n=1)
    assert a["value"].tolist() == b["value"].tolist()


def test_a_diverging_fit_is_recorded_as_failed_and_the_grid_goes_on(tmp_path):
    rows, calls = _grid(ResultStore(tmp_path), designs=("conv", "dilated"), lr=1e4, n=1, iterations=30)
    assert len(calls) == 2
    failed = rows[rows["status"] == "failed"]
    assert len(failed) >= 1 and failed["error"].str.contains("exploded|not finite").all()
    assert failed["metric"].eq("fit").all() and failed["value"].isna().all()


def test_restore_without_reference_has_only_blind_rules():
    clip = _clip(0)
    res = denoise.restore(denoise.add_gaussian_noise(clip.audio, 0.1), "conv",
                          FitConfig(iterations=2, precision="fp32", progress=False), prior_opts=TINY)
    assert set(res.outputs) == {"last", "ema", "discrepancy"} and "snr" not in res.history


def _tiny_fit(clip, design):
    """Module level so that worker processes can run it."""
    noisy = denoise.add_gaussian_noise(clip.audio, 0.1, seed=0)
    cfg = FitConfig(iterations=3, precision="fp32", progress=False, device="cpu")
    return denoise.restore(noisy, design, cfg, seed=0, clean=clip.audio, prior_opts=TINY)


def test_parallel_workers_give_the_same_rows_as_one_process(tmp_path):
    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    clips = [_clip(i) for i in range(2)]
    evaluate = lambda clip, est: {"SNR": metrics.snr(clip.audio, est[0])}  # noqa: E731
    quiet = lambda _: None  # noqa: E731
    seq = run_grid(ResultStore(tmp_path / "seq"), grid, clips, ["conv"], _tiny_fit, evaluate, progress=quiet)
    par = run_grid(ResultStore(tmp_path / "par"), grid, clips, ["conv"], _tiny_fit, evaluate, progress=quiet,
                   workers=2)
    key = ["fit_id", "selection", "metric"]
    a, b = seq.sort_values(key).reset_index(drop=True), par.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key]) and (b["status"] == "ok").all()
    # one thread instead of two changes float reduction order only: equal to well below 0.01 dB
    assert np.allclose(a["value"], b["value"], atol=1e-2)


def test_loudest_window_crops_to_the_most_energetic_part():
    from dap.studies.common import load_normalised, loudest_window

    audio = np.zeros(8192, dtype=np.float32)
    audio[5000:5500] = 1.0
    window = loudest_window(audio, 2048)
    assert len(window) == 2048 and window.sum() == 500  # the burst lies wholly inside
    assert loudest_window(audio, 10000) is audio  # shorter clips are left alone
    with pytest.raises(ValueError):
        loudest_window(audio, 0)
    clip = load_normalised("speech", 1, 0, "embedded", max_samples=16384)[0]
    assert clip.audio.shape == (16384,) and np.abs(clip.audio).max() == pytest.approx(1.0)


def test_parallel_grid_starts_the_longest_fits_first(tmp_path):
    """Clip-major order would leave a long dense fit running alone at the end of the grid."""
    submitted = []

    class InOrder(ThreadPoolExecutor):
        def submit(self, fn, *args):
            submitted.append((args[1].id, args[2]))  # _call_fit(run_fit, clip, design)
            return super().submit(fn, *args)

    short, long = _clip(0), Clip(id="long", dataset="digits", audio=np.tile(_clip(1).audio, 2))
    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    run_grid(ResultStore(tmp_path), grid, [short, long], ["conv", "dilated_exp_dense"], _tiny_fit,
             lambda clip, est: {"SNR": 0.0}, progress=lambda _: None, workers=2, executor=lambda w, t: InOrder(1))
    # cost = samples x measured s/iteration (dap.config.costs: dense ~1.7x conv): 2L x 1.01, 2L x 0.59, L x 1.01, L x 0.59
    assert submitted == [("long", "dilated_exp_dense"), ("long", "conv"), ("c0", "dilated_exp_dense"), ("c0", "conv")]


def test_one_pending_fit_of_a_parallel_grid_runs_with_a_workers_threads(tmp_path):
    """The thread count changes reduction order (bf16): a fit resumed or audited alone must run as it
    would have in the whole grid, in a worker with cpu_count // workers threads, not in this process."""
    made = []

    def pool(w, t):
        made.append((w, t))
        return ThreadPoolExecutor(1)

    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    store = ResultStore(tmp_path)
    run_grid(store, grid, [_clip(0)], ["conv"], _tiny_fit, lambda clip, est: {"SNR": 0.0},
             progress=lambda _: None, workers=2, executor=pool)
    assert made == [(2, max(1, (os.cpu_count() or 1) // 2))] and (store.rows["status"] == "ok").all()
    made.clear()  # nothing pending: no pool at all
    run_grid(store, grid, [_clip(0)], ["conv"], _tiny_fit, lambda clip, est: {"SNR": 0.0},
             progress=lambda _: None, workers=2, executor=pool)
    assert made == []


_SCORED_IN: list[str] = []


def _snr_noting_the_thread(clip, est):
    import threading

    _SCORED_IN.append(threading.current_thread().name)
    return {"SNR": metrics.snr(clip.audio, est[0])}


def test_fits_are_scored_where_they_ran_when_the_scorer_can_travel(tmp_path):
    """PESQ / BSS Eval in the one parent would serialise a pool of GPU workers: a picklable
    ``evaluate`` runs in the worker (here a pool thread); a closure cannot travel and runs here."""
    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    clips = [_clip(i) for i in range(2)]
    pool = lambda w, t: ThreadPoolExecutor(w, thread_name_prefix="worker")  # noqa: E731
    _SCORED_IN.clear()
    rows = run_grid(ResultStore(tmp_path / "a"), grid, clips, ["conv"], _tiny_fit, _snr_noting_the_thread,
                    progress=lambda _: None, workers=2, executor=pool)
    scored = rows.groupby(["fit_id", "selection"]).ngroups  # one evaluation per fit and kept rule
    assert scored >= 2 * 3 and (rows["status"] == "ok").all()
    assert len(_SCORED_IN) == scored and all(name.startswith("worker") for name in _SCORED_IN), _SCORED_IN

    _SCORED_IN.clear()
    closure = lambda clip, est: _snr_noting_the_thread(clip, est)  # noqa: E731
    again = run_grid(ResultStore(tmp_path / "b"), grid, clips, ["conv"], _tiny_fit, closure,
                     progress=lambda _: None, workers=2, executor=pool)
    assert _SCORED_IN == ["MainThread"] * scored
    key = ["fit_id", "selection", "metric"]
    a, b = (r.sort_values(key).reset_index(drop=True) for r in (rows, again))
    assert a[key].equals(b[key])
    # two fits sharing the CPU's threads change float reduction order only (as in the test above)
    assert np.allclose(a["value"], b["value"], atol=1e-2)


def test_a_fit_another_writer_recorded_meanwhile_is_not_redone(tmp_path):
    """'Done' is asked just before each fit starts: a second driver on the same store (or another
    machine sharing it) may have recorded it since the grid was planned."""
    from dap.core.store import fit_id

    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    clips = [_clip(0), _clip(1)]
    other = fit_id(grid.fit_config(clips[1], "conv"))
    fitted = []

    def run_fit(clip, design):
        if not fitted:  # meanwhile, another writer records the second clip's fit
            ResultStore(tmp_path).add([{"fit_id": other, "task": grid.task, "dataset": "digits", "clip_id": "c1",
                                        "design": "conv", "selection": "last", "metric": "SNR", "value": 1.0,
                                        "status": "ok"}])
        fitted.append(clip.id)
        return _tiny_fit(clip, design)

    said = []
    rows = run_grid(ResultStore(tmp_path), grid, clips, ["conv"], run_fit,
                    lambda clip, est: {"SNR": metrics.snr(clip.audio, est[0])}, progress=said.append)
    assert fitted == ["c0"] and any("recorded by another writer" in line for line in said)
    assert set(rows["fit_id"]) == {fit_id(grid.fit_config(clips[0], "conv")), other}
