"""Figure 2 of paper 1: how fast each prior converges, the four designs against a harmonic-
convolution U-Net, on the same noisy clips and the same machine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dap.engine.grid import load_history
from dap.priors import ALL_DESIGNS, DESIGN_LABELS, build_prior, count_parameters
from dap.config.notebook_settings import GaussianDenoisingSettings
from dap.report.tables import caption, convergence_plot
from dap.studies.common import COMMON_DEVIATIONS, describe_data, fit_description, scale_deviations


def convergence_curves(folder, rows: pd.DataFrame, metric: str = "snr") -> dict[str, pd.DataFrame]:
    """Per design: ``iteration, mean, low, high`` of ``metric`` across clips (low/high = min/max).

    rows: the rows of a denoising grid (one fit per clip and design); histories are read from
    ``folder``. Only successful fits count.
    """
    out = {}
    fits = rows[rows["status"] == "ok"].drop_duplicates("fit_id")
    for design, g in sorted(fits.groupby("design"), key=lambda dg: ALL_DESIGNS.index(dg[0])):
        curves = [load_history(folder, fid).set_index("iteration")[metric] for fid in g["fit_id"]]
        table = pd.concat(curves, axis=1)
        out[design] = pd.DataFrame({"iteration": table.index, "mean": table.mean(axis=1).values,
                                    "low": table.min(axis=1).values, "high": table.max(axis=1).values,
                                    "n_clips": table.shape[1]})
    return out


def iterations_to_fraction(curve: np.ndarray, fraction: float = 0.9, reference: str = "peak") -> int:
    """First iteration (1-based) at which an SNR curve reaches ``fraction`` of its reference value.

    reference: ``"peak"`` (the best SNR: what the oracle rule keeps) or ``"final"`` (the last
    iterate's SNR). Curves of a deep prior rise, peak, then fall as the noise is fitted, so "90 % of
    the final SNR" is reached early when the curve has already decayed: both are reported.
    """
    curve = np.asarray(curve, dtype=float)
    target = np.nanmax(curve) if reference == "peak" else curve[-1]
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"{reference} SNR is {target}: a fraction of it does not define convergence")
    return int(np.argmax(curve >= fraction * target)) + 1


def convergence_table(curves: dict[str, pd.DataFrame], rows: pd.DataFrame) -> pd.DataFrame:
    """One line per design: peak and final mean SNR, iterations to 90 % of each, seconds/iteration
    (from the fits' wall time on the machine that ran them) and the time to reach 90 % of the peak."""
    fits = rows[rows["status"] == "ok"].drop_duplicates("fit_id")
    lines = []
    for design, c in curves.items():
        g = fits[fits["design"] == design]
        s_per_it = float((g["seconds"] / g["iterations"]).median())
        it_peak = iterations_to_fraction(c["mean"].values, 0.9, "peak")
        lines.append({
            "design": design, "label": DESIGN_LABELS.get(design, design),
            "parameters": count_parameters(build_prior(design)),
            "clips": int(c["n_clips"].iloc[0]), "peak_snr": float(c["mean"].max()),
            "peak_iteration": int(c.loc[c["mean"].idxmax(), "iteration"]), "final_snr": float(c["mean"].iloc[-1]),
            "iterations_to_90pct_peak": it_peak,
            "iterations_to_90pct_final": iterations_to_fraction(c["mean"].values, 0.9, "final")
            if c["mean"].iloc[-1] > 0 else None,
            "seconds_per_iteration": s_per_it, "seconds_to_90pct_peak": s_per_it * it_peak,
            **_discrepancy_columns(rows, design),
            "precision": ", ".join(sorted(set(g["precision"].astype(str)))),
            "device": ", ".join(sorted(set(g["device"].astype(str)))),
        })
    return pd.DataFrame(lines)


def _discrepancy_columns(rows: pd.DataFrame, design: str) -> dict:
    """Where the blind discrepancy rule stopped on these fits: median iteration and mean SNR (NaN
    without such rows). It needs no clean reference, unlike the peak."""
    d = rows[(rows["design"] == design) & (rows["selection"] == "discrepancy") & (rows["status"] == "ok")]
    snr = d[d["metric"] == "SNR"]["value"]
    it = pd.to_numeric(d.drop_duplicates("fit_id")["best_iteration"], errors="coerce")
    return {"discrepancy_iteration": float(it.median()) if len(it) else float("nan"),
            "discrepancy_snr": float(snr.mean()) if len(snr) else float("nan")}


def convergence_caption(p: GaussianDenoisingSettings, rows: pd.DataFrame, source: str = "embedded") -> str:
    """Caption of the Figure 2 numbers: data, scale, deviations, and how to read the cost column."""
    return caption(
        "Figure 2 numbers: convergence and cost per design (mean SNR curve over clips)",
        data=describe_data(source, p.datasets), profile=p.profile, n_clips=p.n_clips,
        iterations=p.iterations, selection="whole SNR curve against the clean reference (oracle view)",
        deviations=COMMON_DEVIATIONS + ["harmonic U-Net: 3 time taps instead of 7 (CPU cost)",
                                        "the same step schedule (x0.1 every 500) for every design"]
        + scale_deviations(p),
        extra=[fit_description(p, rows),
               "discrepancy_iteration / _snr: where the blind discrepancy rule (docs/stopping.md) stopped on the "
               "same fits (median iteration, mean SNR; within the budget, else its last iterate)",
               "seconds_per_iteration: each fit's own wall time divided by its iterations; fits that ran at "
               "different times or beside other jobs are not comparable: benchmarks/bench_fit.py times every "
               "design back to back on the same device and precision (results/benchmarks.md)"])


def convergence_figure(folder, rows: pd.DataFrame, metrics=("snr", "psnr")):
    """Figure 2: mean curve per design with the min-max spread over clips, one panel per metric."""
    import matplotlib.pyplot as plt  # only where a figure is drawn: slow to import, absent from lean installs

    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        curves = convergence_curves(folder, rows, metric)
        convergence_plot({d: c.rename(columns={"mean": metric}) for d, c in curves.items()}, metric, ax=ax,
                         band={d: (c["low"], c["high"]) for d, c in curves.items()})
    return fig


#: Figure 2's claim compares the harmonic-convolution U-Net with the proposed design.
HEADLINE_SLOW, HEADLINE_FAST = "harmonic", "dilated_exp_dense"


def headline_ratio(table: pd.DataFrame, slow: str = HEADLINE_SLOW, fast: str = HEADLINE_FAST,
                   column: str = "iterations_to_90pct_peak") -> float:
    """The paper's headline number: how many times more iterations ``slow`` needs than ``fast``.

    table: :func:`convergence_table` (one line per design). With the defaults, the harmonic U-Net's
    iterations to 90 % of its peak mean SNR over the proposed design's (the paper: "~10x fewer
    iterations"). NaN when either design is not in the table (e.g. ``-p designs`` left one out).
    """
    t = table.set_index("design")
    if not {slow, fast} <= set(t.index):
        return float("nan")
    return float(t.loc[slow, column] / t.loc[fast, column])


def convergence_checks(table: pd.DataFrame) -> dict:
    """The named numbers notebook 06 publishes: the :func:`headline_ratio`
    (``ratio_harmonic_vs_dense_iterations``) and, per design, ``peak_snr``,
    ``iterations_to_90pct_peak`` and ``seconds_per_iteration``."""
    t = table.set_index("design")
    return {"ratio_harmonic_vs_dense_iterations": headline_ratio(table),
            **{f"{d}/{k}": float(t.loc[d, k]) for d in t.index
               for k in ("peak_snr", "iterations_to_90pct_peak", "seconds_per_iteration")}}
