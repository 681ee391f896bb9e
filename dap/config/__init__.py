"""What a run is told: the notebooks' typed settings (:mod:`~dap.config.notebook_settings`), their
values per profile (:mod:`~dap.config.profiles`), the paper's optimisation schedule
(:mod:`~dap.config.schedule`) and the measured cost of an iteration (:mod:`~dap.config.costs`).
Imports no torch."""
