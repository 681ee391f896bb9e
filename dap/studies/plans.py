"""The fits of each paper-1 notebook, runnable without papermill: ``python -m dap grid``.

A notebook both fits (its study: :func:`~dap.studies.denoising.denoising_study`, ...) and builds its
table from the rows. On a GPU node or a cluster the fits are the work, hours of it, and a notebook
kernel is a poor host for them (one cell, no restart). ``python -m dap grid NOTEBOOK --profile paper
--cluster ...`` runs exactly the study call of the notebook, with the same settings and therefore the
same fit ids, into the same result store; the notebook run afterwards finds every fit recorded and
only builds the tables and figures. Interrupted, either resumes where it stopped.

:data:`FIT_PLANS` (``get_plan``, ``register_plan``) says, per notebook, which study it runs and which notebook's folder holds the rows
(Figures 1 and 2 share Table 1's fits). ``tests/test_plans.py`` checks it against the notebooks' own code.
Paper 2's notebooks train models rather than fit priors and are not planned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import pandas as pd

from dap.config import profiles
from dap.core.errors import DapError
from dap.core.files import notebook_dir
from dap.core.store import ResultStore
from dap.config.notebook_settings import SettingsError, unknown_name
from dap.studies.denoising import denoising_study
from dap.studies.inpainting import inpainting_study
from dap.studies.separation import separation_study
from dap.studies.stopping import stopping_study

TABLE1 = "02_table1_gaussian_denoising"


@dataclass(frozen=True)
class FitPlan:
    """``study(store, p, source=, root=, progress=) -> rows`` of one notebook, and the notebook
    whose results folder holds its rows."""

    study: Callable[..., pd.DataFrame]
    store_of: str

    def run(self, p, source: str = "embedded", root=None, progress=print) -> pd.DataFrame:
        return self.study(ResultStore(notebook_dir(self.store_of)), p, source=source, root=root, progress=progress)


FIT_PLANS = {
    "01_figure1_denoising_example": FitPlan(partial(denoising_study, noise="gaussian"), TABLE1),
    TABLE1: FitPlan(partial(denoising_study, noise="gaussian"), TABLE1),
    "03_table2_environmental_denoising": FitPlan(partial(denoising_study, noise="environmental"),
                                                 "03_table2_environmental_denoising"),
    "04_table3_inpainting": FitPlan(inpainting_study, "04_table3_inpainting"),
    "05_table4_separation": FitPlan(separation_study, "05_table4_separation"),
    "06_figure2_convergence": FitPlan(partial(denoising_study, noise="gaussian"), TABLE1),
    "11_blind_stopping": FitPlan(stopping_study, "11_blind_stopping"),
}


class PlanError(DapError, ValueError):
    """A notebook without fits to plan, one that matches none, or a plan registered twice."""


def register_plan(notebook: str, study: Callable[..., pd.DataFrame], store_of: str | None = None,
                  replace: bool = False) -> FitPlan:
    """Plan the fits of ``notebook``: ``study(store, p, source=, root=, progress=) -> rows``, recorded
    in the results folder of ``store_of`` (default: the notebook's own). Returns the plan."""
    if notebook in FIT_PLANS and not replace:
        raise PlanError(f"notebook {notebook!r} already has a fit plan")
    FIT_PLANS[notebook] = FitPlan(study, store_of or notebook)
    return FIT_PLANS[notebook]


def get_plan(notebook: str) -> FitPlan:
    """The fit plan of ``notebook``; :class:`PlanError` naming the planned notebooks otherwise."""
    if notebook not in FIT_PLANS:
        raise PlanError(f"no fit plan for {notebook!r}; planned: {', '.join(sorted(FIT_PLANS))}")
    return FIT_PLANS[notebook]


def planned_notebooks(selection: list[str] | None) -> list[str]:
    """Notebook names of :data:`FIT_PLANS` matching ``selection`` (prefixes such as ``02`` or names;
    all when empty), in order."""
    names = sorted(FIT_PLANS)
    if not selection:
        return names
    chosen: list[str] = []
    for item in selection:
        hits = [n for n in names if n == item or n.startswith(item)]
        if not hits:
            raise PlanError(f"no notebook with fits matches {item!r}; these have: {', '.join(names)} "
                            f"(paper 2's notebooks train models: run them with ./run_all.sh 07 08)")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def run_plans(selection: list[str] | None, profile: str, overrides: dict, source: str = "embedded", root=None,
              progress=print) -> dict[str, int]:
    """Run the fits of the selected notebooks under ``profile`` with ``overrides`` (``-p`` values,
    ``cluster`` too), each applied to the notebooks that have that setting, as ``run_all.sh`` does;
    a name that none of them has, or a bad value, is refused before any fit. Returns
    ``{notebook: rows recorded for it}``."""
    names = planned_notebooks(selection)
    known = {name: set(profiles.settings_class(name).names()) - {"profile"} for name in names}
    unknown = [k for k in overrides if not any(k in own for own in known.values())]
    if unknown:
        raise SettingsError(unknown_name("no selected notebook has a parameter", unknown[0], set().union(*known.values())))
    settings = {name: profiles.resolve(name, profile, **{k: v for k, v in overrides.items() if k in known[name]})
                for name in names}  # every notebook's settings checked before the first fit
    done = {}
    for name in names:
        progress(f"grid: {name} ({profile}) -> {notebook_dir(FIT_PLANS[name].store_of)}")
        done[name] = len(FIT_PLANS[name].run(settings[name], source=source, root=root, progress=progress))
    return done
