"""The published numbers of paper 1 (Tables 1-4), typed in from ``papers/`` as data.

Each table is a tidy :class:`pandas.DataFrame` with columns
``design, dataset, metric, mean, std`` (``design`` uses :data:`dap.priors.DESIGNS` names,
``dataset`` the public data-set names of :mod:`dap.data`). Values are exactly as printed in the
paper (dB for SNR-type metrics, raw PESQ, RMS envelope distance).
"""

from __future__ import annotations

import pandas as pd

PAPER1 = ("Narayanaswamy, Thiagarajan, Anirudh, Forouzanfar, Bremer, Spanias: On the Design of Deep "
          "Priors for Unsupervised Audio Restoration, Interspeech 2021")

_D = ("conv", "dilated", "dilated_exp", "dilated_exp_dense")

# (dataset, metric) columns, then one row per design: (mean, std) pairs in column order.
_TABLE1 = {
    "columns": [("speech", "PESQ"), ("speech", "PSNR"), ("digits", "PESQ"), ("digits", "PSNR"), ("piano", "PSNR")],
    "rows": {
        "conv": [(1.73, 0.17), (6.85, 1.47), (1.99, 0.47), (9.54, 2.96), (9.17, 1.34)],
        "dilated": [(1.76, 0.21), (7.18, 1.55), (2.08, 0.47), (10.85, 2.72), (9.11, 1.49)],
        "dilated_exp": [(2.00, 0.19), (7.68, 1.76), (2.20, 0.45), (11.52, 2.89), (10.68, 1.47)],
        "dilated_exp_dense": [(2.07, 0.16), (8.15, 1.94), (2.23, 0.47), (11.55, 2.91), (12.50, 1.11)],
    },
}
# Table 2 has no "dilated" (constant dilation) row in the paper.
_TABLE2 = {
    "columns": _TABLE1["columns"],
    "rows": {
        "conv": [(1.91, 0.26), (4.36, 1.29), (2.23, 0.58), (6.39, 1.81), (5.73, 1.06)],
        "dilated_exp": [(2.04, 0.24), (5.03, 1.27), (2.31, 0.69), (6.95, 1.92), (6.40, 1.12)],
        "dilated_exp_dense": [(2.31, 0.22), (5.58, 1.34), (2.46, 0.58), (7.19, 1.82), (7.30, 1.12)],
    },
}
_TABLE3 = {
    "columns": [("speech", "Spec. SNR"), ("speech", "Env. Dist."), ("digits", "Spec. SNR"), ("digits", "Env. Dist.")],
    "rows": {
        "conv": [(7.27, 1.43), (0.08, 0.02), (7.34, 1.91), (0.12, 0.03)],
        "dilated": [(7.18, 1.06), (0.08, 0.02), (7.78, 1.88), (0.11, 0.03)],
        "dilated_exp": [(7.95, 1.16), (0.07, 0.02), (9.02, 1.96), (0.10, 0.03)],
        "dilated_exp_dense": [(10.01, 1.78), (0.06, 0.02), (10.80, 2.52), (0.09, 0.03)],
    },
}
_TABLE4 = {
    "columns": [("piano", "SDR"), ("drums", "SDR"), ("piano", "SIR"), ("drums", "SIR"),
                ("piano", "Spec. SNR"), ("drums", "Spec. SNR"), ("piano", "Env. Dist."), ("drums", "Env. Dist.")],
    "rows": {
        "conv": [(2.56, 1.71), (-0.28, 1.45), (13.17, 6.62), (-6.41, 8.18), (2.75, 1.59), (0.01, 0.97), (0.28, 0.09), (0.18, 0.07)],
        "dilated": [(2.54, 1.63), (0.02, 1.47), (13.09, 7.47), (-3.41, 9.09), (2.75, 1.39), (0.04, 0.74), (0.26, 0.08), (0.15, 0.05)],
        "dilated_exp": [(3.07, 1.38), (0.15, 1.87), (11.84, 8.64), (1.12, 5.25), (3.26, 1.64), (0.17, 1.65), (0.25, 0.06), (0.14, 0.05)],
        "dilated_exp_dense": [(4.84, 2.61), (0.61, 3.09), (12.57, 7.62), (1.93, 5.64), (5.43, 2.04), (0.54, 1.77), (0.21, 0.08), (0.14, 0.04)],
    },
}
_TABLES = {"table1": _TABLE1, "table2": _TABLE2, "table3": _TABLE3, "table4": _TABLE4}

#: What each table measures, as the paper's captions say.
CAPTIONS = {
    "table1": "Audio denoising performance of deep audio priors under the presence of Gaussian noise.",
    "table2": "Audio denoising performance of deep audio priors under the presence of environmental noise.",
    "table3": "Audio inpainting performance of deep audio priors under random spatio-temporal masking.",
    "table4": "Unsupervised source separation performance of deep audio priors.",
}

#: Metrics where a lower value is better (used when ranking designs).
LOWER_IS_BETTER = {"Env. Dist."}


def table(name: str) -> pd.DataFrame:
    """Published numbers of ``name`` in ``("table1", ..., "table4")`` as a tidy frame.

    Columns: design, dataset, metric, mean, std (one row per printed cell).
    """
    if name not in _TABLES:
        raise KeyError(f"unknown table {name!r}; choose one of {sorted(_TABLES)}")
    spec = _TABLES[name]
    rows = []
    for design, cells in spec["rows"].items():
        assert design in _D and len(cells) == len(spec["columns"])
        for (dataset, metric), (mean, std) in zip(spec["columns"], cells):
            rows.append({"design": design, "dataset": dataset, "metric": metric, "mean": mean, "std": std})
    return pd.DataFrame(rows)


def cell(name: str, design: str, dataset: str, metric: str) -> tuple[float, float]:
    """One published ``(mean, std)``; KeyError if the paper has no such cell."""
    t = table(name)
    hit = t[(t.design == design) & (t.dataset == dataset) & (t.metric == metric)]
    if hit.empty:
        raise KeyError(f"{name} has no cell for design={design}, dataset={dataset}, metric={metric}")
    return float(hit["mean"].iloc[0]), float(hit["std"].iloc[0])
