"""The registry of restoration tasks: what a grid of fits needs to know about a task.

``get_task(name)`` returns a :class:`Task`; ``register_task`` adds one, after which
:func:`dap.studies.generic.task_study` fits it over the designs and clips of a notebook's settings
and :func:`dap.studies.generic.task_baselines` runs the baselines registered for it
(:func:`dap.baselines.register_baseline`). The built-in tasks register themselves in their modules
(:mod:`dap.tasks.denoise`, :mod:`~dap.tasks.inpaint`, :mod:`~dap.tasks.separate`); docs/extending.md
walks through adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dap.core.errors import DapError
from dap.core.registry import Registry


class TaskError(DapError, ValueError):
    """An unknown task name, or a task registered twice."""


@dataclass(frozen=True)
class Observation:
    """What a corruption produces: ``observed`` ``(L,)`` (what the prior is fitted to), ``context``
    (what the task's restore and evaluate need besides, e.g. an inpainting ``mask``) and ``extra``
    (what describes the corruption in the rows, e.g. the noise level)."""

    observed: np.ndarray
    context: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One restoration task. Its functions must be module-level (picklable) for parallel grids.

    corrupt: ``corrupt(clean, seed) -> Observation``; clean ``(L,)`` (separation: the sources ``(2, L)``).
    restore: ``restore(observed, design, config, *, seed, clean, prior_opts, **context) -> FitResult``
    with outputs ``(S, L)``. evaluate: ``evaluate(clean, estimate, **context) -> {metric: value}``,
    estimate ``(S, L)``. metrics: the names ``evaluate`` returns, in table order.
    """

    name: str
    corrupt: Callable[..., Observation]
    restore: Callable[..., object]
    evaluate: Callable[..., dict]
    metrics: tuple[str, ...]
    description: str = ""


_REGISTRY: Registry[Task] = Registry("task", TaskError)


def register_task(task: Task, replace: bool = False) -> Task:
    """Add ``task`` to the registry (``replace``: overwrite one of the same name). Returns it."""
    return _REGISTRY.register(task.name, task, replace)


def get_task(name: str) -> Task:
    """The registered task ``name``; :class:`TaskError` listing the known ones otherwise."""
    return _REGISTRY.lookup(name)


def task_names() -> tuple[str, ...]:
    """Every registered task, in registration order."""
    return tuple(_REGISTRY)
