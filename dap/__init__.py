"""dap: a reproducible companion for two audio papers.

1. *On the Design of Deep Priors for Unsupervised Audio Restoration* (Interspeech 2021);
2. *Weakly Informed Audio Source Separation* (WASPAA 2019).

Dependency map (the contract of :mod:`dap.layers`, checked by ``tests/test_layers.py``): a module
imports its own layer or lower ones, never higher.

====  ==============  ==================================================================================
 0    core            ``dap.core``: errors, text, seeds, files, audio, device, failures, provenance, store
 1    foundations     ``metrics``, ``noise``, ``plots``, ``data``, ``paper``, ``costs``, ``progress``,
                      ``profiles``, ``settings``, ``claims``; ``wiass.side_info/data/configurations/
                      study_data/remix/references/plots``
 2    models          ``priors``, ``baselines``, ``wiass.model``, ``wiass.settings``
 3    engine          ``fit``, ``wiass.train``, ``wiass.batches``
 4    tasks           ``tasks.denoise/inpaint/separate``, ``wiass.evaluate``
 5    orchestration   ``grid`` (the grid runner), ``report``
 6    applications    ``studies``, ``restore``, ``explore``, ``widgets``, ``teaching``, ``claim_registry``,
                      ``claims_table``, ``wiass.study/tables/figure2/figure3/captions``
 7    entry points    ``runner`` (notebooks via papermill), ``cli`` (``python -m dap``)
====  ==============  ==================================================================================

The details the papers leave out (signal path, architecture, schedules, selection rules, metric
definitions) are in ``docs/`` (index: ``docs/README.md``).
"""

from dap.core.provenance import VERSION as __version__  # noqa: E402,F401

from dap.core.errors import AudioError, DapError, DatasetError, FitDiverged  # noqa: E402,F401
