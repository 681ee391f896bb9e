"""Every claim of the two papers as a tested statement: paired effect, bootstrap interval, verdict.

A :class:`Claim` names two designs / configurations ``a`` and ``b`` (or ``b`` a constant, e.g. a
chance level), the rows that measure them (notebook, task, data set, metric, selection rule) and
the sign of ``a - b`` that the paper reports (``expect``). :func:`paired_effect` pairs the rows by
clip (same data set and clip id, one value per design), takes the per-clip differences ``a - b``,
their mean and a percentile-bootstrap 95 % interval (:data:`N_BOOT` resamples, fixed seed), and
:func:`verdict` applies the rule of docs/claims.md:

* **reproduced**: the interval excludes zero on the paper's side;
* **contradicted**: it excludes zero on the other side;
* **inconclusive at this n**: it contains zero, or fewer than :data:`MIN_N` clips are paired (one
  clip can never reproduce anything);
* **undefined on these clips**: the rows exist but the metric is not defined on any clip (EPS when
  no frame is predicted exactly silent);
* **not run in this profile**: no rows.

A claim of *no* difference (``expect = 0``, e.g. paper 2's "binary side information does not change
SDR much") is reproduced when the whole interval lies within ``±margin``, contradicted when it lies
entirely outside, inconclusive otherwise.

:func:`dap.claims_table.write_claims` renders ``results/CLAIMS.md`` from the ``rows.csv`` files the notebooks wrote;
``python -m dap claims`` and ``run_all.sh`` call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dap.core.errors import DapError

MIN_N = 3          # fewer paired clips: inconclusive whatever the numbers (n = 3: all three must agree)
N_BOOT = 10_000    # bootstrap resamples
BOOT_SEED = 0      # fixed: the same rows always give the same interval
CONFIDENCE = 0.95

REPRODUCED, CONTRADICTED = "reproduced", "contradicted"
INCONCLUSIVE, NOT_RUN = "inconclusive at this n", "not run in this profile"
#: Rows exist but the metric is undefined on every clip (e.g. EPS when no frame is predicted silent).
UNDEFINED = "undefined on these clips"
VERDICTS = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNDEFINED, NOT_RUN)

#: Profiles from the largest down: without a requested profile, a claim uses the largest that has rows.
_PROFILES_LARGEST_FIRST = ("paper", "quick", "smoke")
_PAIR_KEY = ["dataset", "clip_id"]


class ClaimError(DapError, ValueError):
    """A claim or its rows are malformed (unknown quantity, missing columns, bad direction)."""


@dataclass(frozen=True)
class Claim:
    """One statement of a paper, as a paired comparison.

    ``a``, ``b``: design / configuration names as stored in the rows (``b`` may be a number: a
    constant reference such as a chance level, then the differences are ``a - b`` per clip).
    ``expect``: the sign of ``a - b`` the paper reports (+1, -1; 0 = "no difference" within
    ``±margin``). ``quantity``: ``"value"`` (the metric's value) or ``"log10 best_iteration"`` (the
    iteration the selection rule kept, log10: a ratio of iterations becomes a difference).
    ``b_metric``: B's metric when it differs from A's (e.g. the exact chance level that notebook 07
    stores per fragment beside each alignment score: ``a == b``, ``metric="alignment_accuracy"``,
    ``b_metric="chance_alignment_accuracy"``).
    """

    id: str
    paper: int
    text: str
    source: str      # "Table 1", "Figure 2", ...
    notebook: str    # results/<notebook>/rows.csv holds the rows
    link: str        # the table / figure it comes from, relative to results/ ("<notebook>/<file>.md")
    metric: str
    a: str
    b: str | float
    expect: int = 1
    dataset: str | None = None   # None: pool every data set (pairs stay within a data set)
    task: str | None = None
    selection: str = "oracle"
    quantity: str = "value"
    margin: float = 0.0
    b_label: str = ""
    b_metric: str | None = None

    def __post_init__(self):
        if self.expect not in (-1, 0, 1):
            raise ClaimError(f"claim {self.id}: expect must be -1, 0 or +1, not {self.expect}")
        if self.expect == 0 and self.margin <= 0:
            raise ClaimError(f"claim {self.id}: a no-difference claim needs a margin > 0")
        if self.quantity not in ("value", "log10 best_iteration"):
            raise ClaimError(f"claim {self.id}: unknown quantity {self.quantity!r}")
        if self.a == self.b and self.b_metric in (None, self.metric):
            raise ClaimError(f"claim {self.id}: A and B are the same rows ({self.a}, {self.metric})")

    @property
    def compared(self) -> str:
        other = self.b_label or (f"{self.b:g}" if isinstance(self.b, (int, float)) else str(self.b))
        return f"{self.a} − {other}"

    @property
    def metric_b(self) -> str:
        return self.b_metric or self.metric


@dataclass(frozen=True)
class Effect:
    """The measured paired effect of a claim: ``n`` paired clips, mean difference and its interval."""

    n: int
    mean: float
    low: float
    high: float
    verdict: str
    profile: str = ""
    data: str = ""


# ----------------------------------------------------------------------------- the rule
def bootstrap_interval(diffs, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``diffs`` ``(n,)`` (NaN, NaN when n < 2)."""
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def verdict(n: int, low: float, high: float, expect: int, margin: float = 0.0) -> str:
    """The claim rule (module doc) for ``n`` paired clips whose mean difference has the interval
    ``[low, high]`` and a paper direction ``expect`` (+1 / -1, 0 = no difference within ``margin``)."""
    if n == 0:
        return NOT_RUN
    if n < MIN_N or not (np.isfinite(low) and np.isfinite(high)):
        return INCONCLUSIVE
    if expect == 0:
        if -margin <= low and high <= margin:
            return REPRODUCED
        return CONTRADICTED if (low > margin or high < -margin) else INCONCLUSIVE
    if low > 0 or high < 0:
        return REPRODUCED if (low > 0) == (expect > 0) else CONTRADICTED
    return INCONCLUSIVE


def effect_of(diffs, expect: int, margin: float = 0.0, **labels) -> Effect:
    """:class:`Effect` of per-clip differences ``diffs`` ``(n,)`` (non-finite ones already removed)."""
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    low, high = bootstrap_interval(d)
    mean = float(d.mean()) if d.size else math.nan
    return Effect(int(d.size), mean, low, high, verdict(int(d.size), low, high, expect, margin), **labels)


# ----------------------------------------------------------------------------- rows -> differences
def claim_rows(rows: pd.DataFrame, claim: Claim, profile: str | None = None,
               finite_only: bool = True) -> pd.DataFrame:
    """The successful, finite rows of ``claim`` (A: design ``a`` and ``metric``; B: design ``b`` and
    ``metric_b``; its selection, task and data set) in one profile: ``profile``, or else the largest
    profile that has such rows. Adds ``side`` ("a" / "b") and ``x`` (the claim's quantity); one row
    per (side, clip) (the last recorded when a clip was fitted twice, e.g. with an override)."""
    missing = {"design", "metric", "value", "clip_id", "dataset"} - set(rows.columns)
    if missing:
        raise ClaimError(f"result rows lack the columns {sorted(missing)}")
    is_a = (rows["design"] == claim.a) & (rows["metric"] == claim.metric)
    is_b = (rows["design"] == claim.b) & (rows["metric"] == claim.metric_b) \
        if not isinstance(claim.b, (int, float)) else pd.Series(False, index=rows.index)
    keep = is_a | is_b
    keep &= rows["status"].fillna("ok").eq("ok") if "status" in rows else True
    if claim.selection is not None and "selection" in rows:
        keep &= rows["selection"] == claim.selection
    if claim.task is not None and "task" in rows:
        keep &= rows["task"] == claim.task
    if claim.dataset is not None:
        keep &= rows["dataset"] == claim.dataset
    sel = rows[keep].assign(side=np.where(is_a[keep], "a", "b"))
    if "profile" in sel and len(sel):
        present = set(sel["profile"].astype(str))
        chosen = profile if profile is not None else next((p for p in _PROFILES_LARGEST_FIRST if p in present),
                                                          sorted(present)[0])
        sel = sel[sel["profile"].astype(str) == chosen]
    column = "value" if claim.quantity == "value" else "best_iteration"
    x = pd.to_numeric(sel[column], errors="coerce")
    if claim.quantity == "log10 best_iteration":
        x = np.log10(x.where(x > 0))
    sel = sel.assign(x=x)
    if finite_only:
        sel = sel[np.isfinite(sel["x"])]
    return sel.drop_duplicates(["side"] + _PAIR_KEY, keep="last")


def paired_differences(rows: pd.DataFrame, claim: Claim, profile: str | None = None) -> pd.Series:
    """Per-clip ``a - b`` of ``claim`` (index: data set, clip id); clips without both are dropped."""
    sel = claim_rows(rows, claim, profile)
    a = sel[sel["side"] == "a"].set_index(_PAIR_KEY)["x"]
    if isinstance(claim.b, (int, float)):
        return (a - float(claim.b)).rename("diff")
    b = sel[sel["side"] == "b"].set_index(_PAIR_KEY)["x"]
    return (a - b).dropna().rename("diff")


def paired_effect(rows: pd.DataFrame, claim: Claim, profile: str | None = None) -> Effect:
    """The measured :class:`Effect` of ``claim`` on ``rows`` (any table's tidy rows; none: not run)."""
    if rows.empty:
        return effect_of([], claim.expect, claim.margin)
    sel = claim_rows(rows, claim, profile)
    diffs = paired_differences(sel, claim, profile=None)
    labels = {"profile": ", ".join(sorted(set(sel["profile"].astype(str)))) if "profile" in sel and len(diffs) else "",
              "data": ", ".join(sorted(set(sel["source"].astype(str)))) if "source" in sel and len(diffs) else ""}
    effect = effect_of(diffs.to_numpy(), claim.expect, claim.margin, **labels)
    if effect.verdict == NOT_RUN:
        ran = set(claim_rows(rows, claim, profile, finite_only=False)["side"])
        if ran == {"a", "b"} or (ran == {"a"} and isinstance(claim.b, (int, float))):
            # both sides ran in this profile, but the metric is NaN on every clip
            effect = Effect(0, math.nan, math.nan, math.nan, UNDEFINED)
    return effect


def combine(verdicts: list[str]) -> str:
    """One verdict for several comparisons that must all hold (e.g. "best of four designs"):
    comparisons that did not run are left out (a profile may run fewer designs); then contradicted
    if any is, reproduced if all are, not run if none ran, else inconclusive."""
    verdicts = [v for v in verdicts if v not in (NOT_RUN, UNDEFINED)]
    if not verdicts:
        return NOT_RUN
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else INCONCLUSIVE


def best_design_verdicts(rows: pd.DataFrame, best: dict[tuple[str, str], str], designs, selection: str,
                         lower_is_better=()) -> pd.DataFrame:
    """Per table column ``(dataset, metric)``: is the paper's best design ``best[column]`` better
    than every other design of ``designs`` on the same clips? One paired comparison per other design
    (:func:`paired_effect`), joined by :func:`combine`. Columns ``dataset, metric, best_in_paper,
    verdict, n`` (the fewest paired clips of the comparisons that ran)."""
    out = []
    for (dataset, metric), top in best.items():
        sign = -1 if metric in lower_is_better else 1
        effects = [paired_effect(rows, Claim(id="", paper=1, text="", source="", notebook="", link="",
                                             metric=metric, a=top, b=other, expect=sign, dataset=dataset,
                                             selection=selection))
                   for other in designs if other != top]
        out.append({"dataset": dataset, "metric": metric, "best_in_paper": top,
                    "verdict": combine([e.verdict for e in effects]),
                    "n": min((e.n for e in effects if e.n), default=0)})
    return pd.DataFrame(out, columns=["dataset", "metric", "best_in_paper", "verdict", "n"])


def verdict_counts(verdicts) -> str:
    """``"reproduced 2, contradicted 0, inconclusive at this n 3, not run in this profile 0"``."""
    verdicts = list(verdicts)
    return ", ".join(f"{v} {verdicts.count(v)}" for v in VERDICTS)
