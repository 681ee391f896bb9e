"""The oracle rule run to its peak (FitConfig.oracle_patience): past the budget the fit goes on while the
tracked score still improves, stops ``patience`` iterations after its best, and leaves the blind rules
those of the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dap.engine.fit import FitConfig, FitSettingError, fit

PEAK = 12  # the iteration whose output the synthetic tracker scores best


class _Counter(nn.Module):
    """A generator whose output is its own parameter (shape (1, 4)); the fit moves it towards 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1, 4))

    def forward(self) -> torch.Tensor:
        """Returns:
            The parameter ``(1, 4)``."""
        return self.w


def _fit(iterations: int, patience: int | None, max_iterations: int | None, peak: int = PEAK):
    calls = []

    def track(wav: np.ndarray) -> dict[str, float]:
        calls.append(1)
        it = (len(calls) + 1) // 2  # two calls per tracked iteration: the output, then its EMA
        return {"snr": -abs(it - peak)}

    config = FitConfig(iterations=iterations, lr=0.01, lr_step=1000, lr_gamma=1.0, precision="fp32",
                       progress=False, device="cpu", oracle_patience=patience, max_iterations=max_iterations)
    return fit(_Counter(), lambda p: (p ** 2).mean(), lambda p: p, config, track=track)


def test_the_fit_goes_past_the_budget_to_the_peak_and_stops_after_the_patience():
    result = _fit(iterations=5, patience=4, max_iterations=100)
    assert result.best_iteration["oracle"] == PEAK
    assert result.iterations == PEAK + 4
    assert result.best_iteration["last"] == 5 and result.best_iteration["ema"] == 5  # blind: the budget's
    assert result.extra["oracle_peaked"] is True
    assert list(result.history["iteration"]) == list(range(1, PEAK + 5))


def test_without_patience_the_oracle_is_the_best_of_the_budget():
    result = _fit(iterations=5, patience=None, max_iterations=100)
    assert result.iterations == 5 and result.best_iteration["oracle"] == 5
    assert "oracle_peaked" not in result.extra


def test_a_peak_inside_the_budget_ends_the_fit_at_the_budget():
    result = _fit(iterations=20, patience=3, max_iterations=100)
    assert result.iterations == 20 and result.best_iteration["oracle"] == PEAK


def test_the_cap_comes_first_and_says_the_curve_had_not_peaked():
    result = _fit(iterations=5, patience=4, max_iterations=10)
    assert result.iterations == 10 and result.best_iteration["oracle"] == 10
    assert result.extra["oracle_peaked"] is False


def test_a_patience_below_one_is_refused():
    with pytest.raises(FitSettingError, match="oracle_patience"):
        _fit(iterations=5, patience=0, max_iterations=10)
