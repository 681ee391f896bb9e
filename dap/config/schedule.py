"""Paper 1's optimisation schedule, defined once (docs/method.md, Optimisation): Adam at a learning
rate of 1e-3, multiplied by 0.1 every 500 iterations, 2000 iterations per fit.

:class:`dap.engine.fit.FitConfig`, the profiles, ``python -m dap restore`` and the explorer read it
from here; a profile changes the iteration budget, never the schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Schedule:
    """Adam's learning rate ``lr``, multiplied by ``lr_gamma`` every ``lr_step`` iterations."""

    lr: float
    lr_step: int
    lr_gamma: float

    def settings(self) -> dict:
        """``{"lr", "lr_step", "lr_gamma"}``: the schedule as notebook settings or FitConfig fields."""
        return asdict(self)


PAPER_SCHEDULE = Schedule(lr=1e-3, lr_step=500, lr_gamma=0.1)
#: Iterations of one fit in the paper's protocol.
PAPER_ITERATIONS = 2000
