"""Restoration tasks of paper 1 as fits of :mod:`dap.engine.fit`, and their registry.

Each task module corrupts a clean clip (``corrupt``: :func:`~dap.tasks.denoise.add_gaussian_noise`
and :func:`~dap.tasks.denoise.add_environmental_noise`, :func:`~dap.tasks.inpaint.apply_gaps`,
:func:`~dap.tasks.separate.make_mixture` underneath), fits a prior to the observation (``restore``)
and scores the result (``evaluate``), and registers itself as a :class:`~dap.tasks.registry.Task`
(``get_task(name)``, ``register_task``).
"""

from dap.tasks.registry import Observation, Task, TaskError, get_task, register_task, task_names
from dap.tasks import denoise, inpaint, separate  # noqa: E402  (each registers its task)

__all__ = ["Observation", "Task", "TaskError", "denoise", "get_task", "inpaint", "register_task", "separate",
           "task_names"]
