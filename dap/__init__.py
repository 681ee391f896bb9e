"""dap: a reproducible companion for two audio papers.

1. *On the Design of Deep Priors for Unsupervised Audio Restoration* (Interspeech 2021);
2. *Weakly Informed Audio Source Separation* (WASPAA 2019).

Dependency map (the contract of :mod:`dap.layers`, checked by ``tests/test_layers.py``, explained in
``docs/architecture.md``): a module imports its own layer or lower ones, never higher, and no import
runs in a circle.

====  ==============  ==================================================================================
 0    core            ``core``: errors, text, seeds, files, audio, device, failures, provenance, store, registry
 1    foundations     ``config`` (notebook settings, profiles, schedule, costs), ``metrics``, ``noise``,
                      ``data``, ``report.paper``, ``report.plots``, ``claims.rule``, ``engine.progress``;
                      ``wiass.side_info/data/configurations/examples/study_data/remix/references/plots``
 2    models          ``priors`` (the design registry), ``baselines``, ``wiass.model``, ``wiass.train_settings``
 3    engine          ``engine.fit``, ``wiass.train``, ``wiass.batches``
 4    tasks           ``tasks`` (the task registry), ``wiass.evaluate``
 5    orchestration   ``engine.grid``, ``engine.cluster``, ``report.tables``
 6    applications    ``studies``, ``restore``, ``explore`` (with its widgets and ``teaching``),
                      ``claims.registry``, ``claims.table``, ``report.check``,
                      ``wiass.study/learning_curve/tables/figure2/figure3/captions``
 7    entry points    ``runner`` (notebooks via papermill), ``cli`` (``python -m dap``)
====  ==============  ==================================================================================

The details the papers leave out (signal path, architecture, schedules, selection rules, metric
definitions) are in ``docs/`` (index: ``docs/README.md``).
"""

from dap.core.provenance import VERSION as __version__  # noqa: E402,F401

from dap.core.errors import AudioError, DapError, DatasetError, FitDiverged  # noqa: E402,F401
