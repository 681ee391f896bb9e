"""The paper's experiments, one function per table or figure, called by the notebooks.

Each study loads its clips, builds the grid of fits (:mod:`dap.engine.grid`) and returns the tidy
rows; :mod:`dap.report` turns rows into the published-vs-reproduced tables. One module per task:
``denoising`` (Tables 1-2, Figure 1), ``inpainting`` (Table 3), ``separation`` (Table 4),
``stopping`` (the discrepancy rule across input SNRs, notebook 11); ``common`` holds what they share
(:func:`~dap.studies.common.study_setup`: every study's grid, engine settings and prior options).
Each takes the notebook's settings ``p`` (:mod:`dap.config.profiles`: a typed, frozen dataclass).
``*_baselines`` run the classical baselines of :mod:`dap.baselines` on the same clips (``baselines.csv``);
``generic`` runs any registered task (docs/extending.md).
"""

import importlib
import pkgutil

from dap.studies.common import (BASELINE_FILE, COMMON_DEVIATIONS, StudySetup, describe_data, fit_config,
                                fit_description, fit_settings, load_normalised, study_setup, table_checks)
from dap.studies.convergence import (convergence_caption, convergence_curves, convergence_figure, convergence_checks,
                                      convergence_table, headline_ratio, iterations_to_fraction)
from dap.studies.denoising import (DENOISING_METRICS, denoising_baselines, denoising_caption, denoising_example,
                                   denoising_study, discrepancy_points, example_checks, example_peaks,
                                   noise_recordings)
from dap.studies.inpainting import (gap_table, inpainting_baselines, inpainting_caption, inpainting_example,
                                    inpainting_figure, inpainting_study, mask_checks, write_gap_table)
from dap.studies.separation import (beats_trivial, make_mixtures, per_mixture_report, per_source_rows,
                                    separation_baselines, separation_caption, separation_checks, separation_example,
                                    separation_study, trivial_rows)

__all__ = ["BASELINE_FILE", "COMMON_DEVIATIONS", "StudySetup", "describe_data", "fit_config", "fit_description",
           "fit_settings", "load_normalised", "study_setup", "table_checks", "convergence_caption",
           "convergence_curves", "convergence_figure", "convergence_checks", "convergence_table",
           "headline_ratio", "iterations_to_fraction", "DENOISING_METRICS", "denoising_baselines",
           "denoising_caption", "denoising_example", "denoising_study", "discrepancy_points", "example_checks",
           "example_peaks", "noise_recordings", "gap_table", "inpainting_baselines", "inpainting_caption",
           "inpainting_example", "inpainting_figure", "inpainting_study", "mask_checks", "write_gap_table",
           "beats_trivial", "make_mixtures", "per_mixture_report", "per_source_rows", "separation_baselines",
           "separation_caption", "separation_checks", "separation_example", "separation_study", "trivial_rows"]


def _import_every_study() -> None:
    """Import every module of this package, so that a study which registers its notebook and fit plan
    (:func:`dap.config.profiles.register_notebook`, :func:`dap.studies.plans.register_plan`) is found
    by the runner and ``python -m dap grid`` without an edit here."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_study()
