"""What a notebook publishes: the papers' numbers (:mod:`~dap.report.paper`), plotting helpers
(:mod:`~dap.report.plots`) and the tables, captions and figures built from rows
(:mod:`~dap.report.tables`)."""
