"""The fitting engine on a toy generator (a learnable waveform-domain spectrogram), so the
selection rules, schedule and divergence guard are tested without a U-Net."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from dap import metrics
from dap.core.audio import istft, stft
from dap.engine.fit import FitConfig, LatentPrior, fit

L = 4096


class Free(nn.Module):
    """A generator whose output is a free parameter (fits anything, including the noise)."""

    def __init__(self, shape, seed=0):
        super().__init__()
        self.x = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.01)

    def forward(self):
        return self.x


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(L) / 16000
    clean = (0.8 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    noisy = (clean + 0.3 * rng.standard_normal(L)).astype(np.float32)
    return clean, noisy, stft(noisy)[None]


def _run(cfg, **kw):
    clean, noisy, target = _problem()
    gen = Free(tuple(target.shape))
    return clean, fit(gen, lambda p: torch.mean((p - target) ** 2), lambda p: istft(p, L), cfg,
                      track=lambda w: {"snr": metrics.snr(clean, w[0])}, **kw)


CFG = dict(iterations=60, lr=0.05, lr_step=20, lr_gamma=0.5, precision="fp32", progress=False, device="cpu")


def test_selection_rules_and_history():
    clean, res = _run(FitConfig(**CFG))
    assert res.ok and set(res.outputs) == {"oracle", "last", "ema"}
    h = res.history
    assert list(h["iteration"]) == list(range(1, 61))
    # the oracle output is the best tracked iterate, by construction and by value
    best = int(h["snr"].idxmax())
    assert res.best_iteration["oracle"] == h.loc[best, "iteration"]
    assert metrics.snr(clean, res.outputs["oracle"][0]) == pytest.approx(h["snr"].max(), abs=1e-4)
    assert metrics.snr(clean, res.outputs["oracle"][0]) >= metrics.snr(clean, res.outputs["last"][0])
    # step schedule: lr halves every 20 iterations
    assert h.loc[0, "lr"] == pytest.approx(0.05) and h.loc[25, "lr"] == pytest.approx(0.025)
    assert h.loc[45, "lr"] == pytest.approx(0.0125)
    assert res.outputs["last"].shape == (1, L)
    assert np.abs(res.outputs["last"]).max() <= 1.0  # outputs are clipped like the authors'


def test_without_reference_there_is_no_oracle():
    _, noisy, target = _problem()
    res = fit(Free(tuple(target.shape)), lambda p: torch.mean((p - target) ** 2), lambda p: istft(p, L),
              FitConfig(**CFG))
    assert set(res.outputs) == {"last", "ema"}


def test_nan_loss_stops_the_fit_with_a_reason():
    clean, noisy, target = _problem()
    calls = {"n": 0}

    def loss(p):
        calls["n"] += 1
        value = torch.mean((p - target) ** 2)
        return value * math.nan if calls["n"] == 5 else value

    res = fit(Free(tuple(target.shape)), loss, lambda p: istft(p, L), FitConfig(**CFG))
    assert res.status == "failed" and "nan" in res.error.lower() and "iteration 5" in res.error
    assert res.iterations == 4 and len(res.history) == 4  # what was computed is kept


def test_exploding_learning_rate_is_caught():
    clean, res = _run(FitConfig(**{**CFG, "lr": 1e6}))
    assert res.status == "failed" and ("exploded" in res.error or "nan" in res.error.lower())


def test_stop_callback_ends_early():
    clean, res = _run(FitConfig(**CFG), stop=lambda: True)
    assert res.ok and res.iterations == 1


def test_latent_is_fixed_and_seeded():
    a = LatentPrior(nn.Identity(), (1, 2, 8, 4), seed=3)
    b = LatentPrior(nn.Identity(), (1, 2, 8, 4), seed=3)
    c = LatentPrior(nn.Identity(), (1, 2, 8, 4), seed=4)
    assert torch.equal(a.z, b.z) and not torch.equal(a.z, c.z)
    assert torch.equal(a.z, a.z.clone()) and not a.z.requires_grad
