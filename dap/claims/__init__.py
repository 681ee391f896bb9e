"""The claims of both papers: the paired rule (:mod:`~dap.claims.rule`, statistics only), the claims
as data (:mod:`~dap.claims.registry`) and ``results/CLAIMS.md`` (:mod:`~dap.claims.table`)."""
