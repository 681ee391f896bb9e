"""The dependency contract of ``dap``: which module may import which (``tests/test_layers.py``
parses every import, function-local ones included, and fails on any import against it or any
import circle; docs/architecture.md explains the layout).

A module may import modules of its own layer or of a layer below, never above. Layers, bottom up:

0. ``core``: errors, text, seeds, files, audio (I/O, checks, resampling, STFT), device and
   precision, failure kinds, provenance, the result store; imports nothing else from ``dap``;
1. ``foundations``: notebook settings, profiles, the paper's schedule and measured costs
   (``config``); metrics, noise estimates, data sets, the papers' numbers and plots (``report``),
   the claim rule, grid progress; paper 2's side information, data, configurations and references;
2. ``models``: the priors and their design registry, the classical baselines, paper 2's network and
   its training settings;
3. ``engine``: the fit engine (paper 1); the trainer and its batches (paper 2);
4. ``tasks``: denoising, inpainting, separation as fits, and the task registry; paper 2's evaluation;
5. ``orchestration``: the grid runner, its Dask executor, the tables and captions every study shares;
6. ``applications``: the studies (one per table / figure, any registered task, the fit plans),
   ``restore``, the teaching notebooks' package ``explore``, the claims and CLAIMS.md, the check of
   a reference folder (``report.check``, ``report.rederive``), paper 2's study, learning curve, tables, figures and captions;
7. ``entry points``: the notebook runner and the command line.
"""

from __future__ import annotations

#: Layer of each module prefix (the longest matching prefix decides). A package's path names its
#: concern; where a package spans layers, its modules are listed one by one (docs/architecture.md).
LAYERS: dict[str, int] = {
    "dap.core": 0,
    # foundations
    "dap.layers": 1, "dap.metrics": 1, "dap.noise": 1, "dap.data": 1, "dap.config": 1,
    "dap.report": 1, "dap.claims": 1, "dap.engine": 1, "dap.engine.progress": 1,
    "dap.wiass.side_info": 1, "dap.wiass.data": 1, "dap.wiass.remix": 1, "dap.wiass.references": 1,
    "dap.wiass.plots": 1, "dap.wiass.configurations": 1, "dap.wiass.examples": 1, "dap.wiass.study_data": 1,
    "dap.wiass.render": 1, "dap.wiass.corpus": 1, "dap.wiass.corpus_reading": 1, "dap.wiass.fragment": 1,
    # models
    "dap.priors": 2, "dap.baselines": 2, "dap.wiass.model": 2, "dap.wiass.train_settings": 2,
    # engine
    "dap.engine.fit": 3, "dap.engine.read_back": 3, "dap.engine.audit_selection": 3, "dap.wiass.train": 3, "dap.wiass.batches": 3,
    # tasks
    "dap.tasks": 4, "dap.wiass.evaluate": 4,
    # orchestration
    "dap.engine.grid": 5, "dap.engine.cluster": 5, "dap.report.tables": 5,
    # applications
    "dap.studies": 6, "dap.restore": 6, "dap.explore": 6, "dap.claims.registry": 6, "dap.claims.table": 6,
    "dap.claims.compare": 6, "dap.report.check": 6, "dap.report.reference": 6, "dap.report.audit": 6, "dap.report.rederive": 6,
    "dap.wiass.study": 6, "dap.wiass.learning_curve": 6, "dap.wiass.captions": 6, "dap.wiass.tables": 6, "dap.wiass.figure2": 6,
    "dap.wiass.figure3": 6,
    # entry points
    "dap.runner": 7, "dap.cli": 7, "dap.__main__": 7,
}

NAMES = ["core", "foundations", "models", "engine", "tasks", "orchestration", "applications", "entry points"]


def layer_of(module: str) -> int:
    """Layer of the dotted ``module`` name; the package roots ``dap`` and ``dap.wiass`` (which
    only re-export) count as the lowest layer they import from, i.e. 0 here."""
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        if module in ("dap", "dap.wiass"):
            return 0
        raise KeyError(f"{module}: no layer assigned in dap.layers.LAYERS; add it there")
    return LAYERS[best]
