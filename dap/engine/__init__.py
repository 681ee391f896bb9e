"""Running fits: one fit (:mod:`~dap.engine.fit`, the optimisation engine every task uses), and grids
of fits with a resumable store (:mod:`~dap.engine.grid`), their progress file
(:mod:`~dap.engine.progress`) and a Dask executor (:mod:`~dap.engine.cluster`)."""
