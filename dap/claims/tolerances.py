"""How far a re-run's table cell may move from the reference's and still agree: per-metric tolerances
of ``python -m dap compare``, derived from seed-to-seed variation.

``benchmarks/seed_variation.py --out results/reference/seed_variation`` fits the same clips under
several fit seeds (the observation fixed) and keeps one row per (data set, clip, design, seed,
selection rule, metric) with its value; :func:`measured_tolerances` turns such rows into tolerances
(:data:`SDS` x the standard deviation across seeds of one clip's value, pooled over designs, clips
and rules). :data:`TOLERANCES` holds what the kept rows give (``tests/test_compare.py`` re-derives it
from them, so the two cannot drift apart). Metrics no kept run covers have a stated guess
(:data:`GUESSED_TOLERANCES`) or the default, and every report says which.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: The tolerance is this many pooled standard deviations of one clip's value (a cell is a mean over
#: clips, so it moves less than one clip does; the factor keeps a margin for that).
SDS = 2.0
#: Where the measurement's rows are kept (one ``rows_<notebook>.csv.gz`` per measured notebook).
SEED_VARIATION_DIR = Path(__file__).resolve().parents[2] / "results" / "reference" / "seed_variation"
#: Significant digits the constants below keep of the measured values.
DIGITS = 3

#: Measured (SEED_VARIATION_DIR; docs/claims.md gives the run): dB for the SNR-like metrics, MOS points
#: for PESQ, the metric's own units otherwise. A metric measured in two notebooks keeps the larger value.
TOLERANCES: dict[str, float] = {"PESQ": 0.0897, "PSNR": 0.821, "SNR": 0.821, "Env. Dist.": 0.00781,
                                "Env. Dist. (gaps)": 0.0103, "SNR (gaps)": 0.264, "Spec. SNR": 0.248,
                                "Spec. SNR (gaps)": 0.206}
#: Not measured (separation and paper 2 train or fit three priors per clip: no seed-variation run of them
#: is kept): a stated guess in dB, reported as a guess.
GUESSED_TOLERANCES: dict[str, float] = {"SDR": 0.5, "SIR": 0.5, "SAR": 0.5}
#: The tolerance of any other metric (also reported as not measured).
DEFAULT_TOLERANCE = 0.05


def tolerance(metric: str) -> float:
    """The agreement tolerance of ``metric``: measured, else guessed, else :data:`DEFAULT_TOLERANCE`.

    Args:
        metric: a row's metric name, e.g. ``"PSNR"``.

    Returns:
        The largest absolute difference of a cell that counts as within tolerance.
    """
    return float(TOLERANCES.get(metric, GUESSED_TOLERANCES.get(metric, DEFAULT_TOLERANCE)))


def is_measured(metric: str) -> bool:
    """Whether ``metric``'s tolerance comes from the kept seed-variation rows."""
    return metric in TOLERANCES


def tolerance_note() -> str:
    """One sentence for reports: which tolerances are measured and which are not."""
    measured = ", ".join(f"{m} {v:g}" for m, v in TOLERANCES.items())
    guessed = ", ".join(f"{m} {v:g}" for m, v in GUESSED_TOLERANCES.items())
    return (f"measured as {SDS:g} x the seed-to-seed SD of one clip's value (benchmarks/seed_variation.py, rows in "
            f"results/reference/seed_variation): {measured}; not measured, a guess: {guessed}; "
            f"any other metric {DEFAULT_TOLERANCE:g}, not measured")


def spread(values: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Seed-to-seed spread of per-clip values.

    Args:
        values: one row per (dataset, clip_id, design, seed, selection, metric) with ``value``.
        by: the columns to pool within (e.g. ``["metric"]``).

    Returns:
        Per group of ``by``: ``settings`` (how many (design, clip, selection) were fitted under at
        least two seeds with finite values), ``pooled_sd`` (root of their mean variance across seeds),
        ``largest_sd`` and ``tolerance`` (:data:`SDS` x ``pooled_sd``).
    """
    finite = values[np.isfinite(values["value"])]
    per_setting = (finite.groupby(["dataset", "clip_id", "design", "selection", "metric"])["value"]
                   .agg(["var", "std", "count"]).reset_index())
    per_setting = per_setting[per_setting["count"] >= 2]
    table = per_setting.groupby(by).agg(settings=("var", "size"),
                                        pooled_sd=("var", lambda v: float(np.sqrt(v.mean()))),
                                        largest_sd=("std", "max")).reset_index()
    table["tolerance"] = SDS * table["pooled_sd"]
    return table


def significant(x: float, digits: int = DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (as the constants keep it)."""
    return float(f"{x:.{digits}g}")


def measured_tolerances(folder: str | Path = SEED_VARIATION_DIR) -> dict[str, float]:
    """Tolerances from the kept rows of ``folder`` (``rows_*.csv.gz``): per metric, :data:`SDS` x the
    pooled SD, rounded to :data:`DIGITS` significant digits; the larger where two notebooks measured
    a metric of the same name. Empty when ``folder`` holds no rows."""
    out: dict[str, float] = {}
    for path in sorted(Path(folder).glob("rows_*.csv.gz")):
        for r in spread(pd.read_csv(path), ["metric"]).to_dict("records"):
            out[r["metric"]] = max(out.get(r["metric"], 0.0), significant(r["tolerance"]))
    return out
