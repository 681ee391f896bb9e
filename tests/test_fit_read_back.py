"""The engine's bookkeeping read back every N iterations (no host sync per iteration on a GPU) gives
the same fit as reading back every iteration: history, selected iterates and outputs, identical.
On a CPU the deferred path is forced with ``read_back_every``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from dap.engine.fit import FitConfig, FitSettingError
from dap.noise import estimate_noise
from dap.tasks import denoise

L = 4096
TINY = {"widths": (4, 8, 16)}


def _clip() -> np.ndarray:
    t = np.arange(L) / 16000
    x = np.sin(2 * np.pi * 220 * t) * np.hanning(L)
    return (x / np.abs(x).max()).astype(np.float32)


def _fit(cfg: FitConfig, **kw):
    clean = _clip()
    noisy = denoise.add_gaussian_noise(clean, 0.1, seed=0)
    return denoise.restore(noisy, "dilated", cfg, seed=0, clean=clean, prior_opts=TINY, **kw)


def _same(a, b) -> None:
    assert (a.status, a.error, a.iterations, a.best_iteration, a.extra) == (b.status, b.error, b.iterations,
                                                                            b.best_iteration, b.extra)
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    assert sorted(a.outputs) == sorted(b.outputs)
    for rule in a.outputs:
        assert np.array_equal(a.outputs[rule], b.outputs[rule]), rule


BASE = FitConfig(iterations=12, lr=0.01, lr_step=6, lr_gamma=0.5, precision="fp32", progress=False, device="cpu")


@pytest.mark.parametrize("lag", [3, 5, 40])
def test_deferred_read_back_gives_the_same_fit(lag):
    # with a discrepancy floor and an extension past the budget: every rule and the history
    floor = estimate_noise(denoise.add_gaussian_noise(_clip(), 0.1, seed=0), "white")
    ref = _fit(replace(BASE, max_iterations=20), noise=floor)
    again = _fit(replace(BASE, max_iterations=20, read_back_every=lag), noise=floor)
    assert ref.ok and len(ref.history) == ref.iterations and {"oracle", "ema", "discrepancy"} <= set(ref.outputs)
    _same(ref, again)


def test_a_divergence_is_found_at_the_same_iteration():
    ref = _fit(replace(BASE, lr=1e6))
    assert ref.status == "failed" and ("not finite" in ref.error or "exploded" in ref.error)
    _same(ref, _fit(replace(BASE, lr=1e6, read_back_every=6)))


def test_a_stop_request_keeps_the_iterates_read_back():
    calls = []

    def stop_at_five():
        calls.append(1)
        return len(calls) >= 5

    ref = _fit(BASE, stop=stop_at_five, noise=None)
    calls.clear()
    again = _fit(replace(BASE, read_back_every=4), stop=stop_at_five, noise=None)
    assert ref.iterations == 5
    _same(ref, again)


def test_read_back_every_must_be_positive():
    with pytest.raises(FitSettingError, match="read_back_every"):
        _fit(replace(BASE, read_back_every=0), noise=None)


def _direct(cfg: FitConfig, noise_floor=None):
    """A small engine fit whose loss falls steadily (a conv prior fitted to a fixed image)."""
    import torch

    from dap.engine.fit import LatentPrior, fit

    torch.manual_seed(0)
    gen = LatentPrior(torch.nn.Conv2d(1, 1, 3, padding=1), (1, 1, 16, 16), seed=0)
    target = torch.linspace(-1, 1, 256).reshape(1, 1, 16, 16)
    ref = target.reshape(1, -1).numpy()
    return fit(gen, lambda pred: ((pred - target) ** 2).mean(), lambda pred: pred.reshape(1, -1), cfg,
               track=lambda wav: {"snr": -float(((wav - ref) ** 2).mean())}, noise_floor=noise_floor)


@pytest.mark.parametrize("lag", [4, 40])
def test_the_discrepancy_stop_in_the_extension_is_read_back_exactly(lag):
    cfg = FitConfig(iterations=10, lr=0.01, lr_step=100, precision="fp32", progress=False, device="cpu",
                    max_iterations=60)
    free = _direct(replace(cfg, max_iterations=None, iterations=60))
    floor = float(free.history.loc[free.history["iteration"] == 25, "loss"].iloc[0])
    ref = _direct(cfg, noise_floor=floor)
    assert ref.extra["discrepancy_reached"] and 10 < ref.best_iteration["discrepancy"] == ref.iterations < 60
    _same(ref, _direct(replace(cfg, read_back_every=lag), noise_floor=floor))
