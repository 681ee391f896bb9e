"""Every claim of the two papers as a test that could fail: paired differences, exact test, verdict.

A :class:`Claim` names two designs / configurations ``a`` and ``b`` (``b`` may be a constant, or
another measure of the same rows such as a chance level), the rows that measure them (notebook,
task, data set(s), metric, selection rule) and the sign of ``a - b`` that the paper reports
(``expect``). :func:`paired_effect` pairs the rows by clip (same data set and clip id), takes the
per-clip differences and runs the exact signed-rank test of :mod:`dap.claims.paired_test` (stratified by
data set when a claim pools several). :func:`decide` then corrects the p-values over a *family* of
claims (one table or figure) with Holm's step-down (Tarone's count) and gives the verdicts of
docs/claims.md:

* **reproduced**: the corrected p-value on the paper's side is below :data:`ALPHA`;
* **contradicted**: the corrected p-value on the other side is below :data:`ALPHA`;
* **consistent**: neither, but more than half of the clips lie on the paper's side
  (shown as "consistent in k of n (p = ...)");
* **inconclusive**: neither, and at most half do;
* **undefined on these clips**: the rows exist but the metric is defined on no clip;
* **not run in this profile**: no rows.

A claim of *no* difference (``expect = 0``) is two one-sided tests against ``±margin`` (TOST):
reproduced when both reject, contradicted when the difference lies beyond the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dap.core.errors import DapError
from dap.claims.paired_test import ALPHA, CONFIDENCE, PairedTest, holm_tarone, paired_test

# Kept for paper 2's descriptive tables (percentile bootstrap of a mean over fragments).
N_BOOT = 10_000
BOOT_SEED = 0

REPRODUCED, CONTRADICTED, CONSISTENT, INCONCLUSIVE = "reproduced", "contradicted", "consistent", "inconclusive"
NOT_RUN = "not run in this profile"
#: Rows exist but the metric is undefined on every clip (e.g. EPS when no frame is predicted silent).
UNDEFINED = "undefined on these clips"
VERDICTS = (REPRODUCED, CONTRADICTED, CONSISTENT, INCONCLUSIVE, UNDEFINED, NOT_RUN)
#: Outcomes of a comparison with a reference (the trivial answer, the best baseline).
BEATS, LOSES = "beats", "loses"

#: Profiles from the largest down: without a requested profile, a claim uses the largest that has rows.
_PROFILES_LARGEST_FIRST = ("paper", "quick", "smoke")
_PAIR_KEY = ["dataset", "clip_id"]
#: Two values closer than this are a tie (the papers print two decimals).
TIE = 1e-9


class ClaimError(DapError, ValueError):
    """A claim or its rows are malformed (unknown quantity, missing columns, bad direction)."""


@dataclass(frozen=True)
class Claim:
    """One statement of a paper, as a paired comparison.

    ``a``, ``b``: design / configuration names as stored in the rows (``b`` may be a number: a
    constant reference, then the differences are ``a - b`` per clip; or a tuple of designs: A is
    better than each of them, an intersection-union test, :func:`paired_effect`). ``expect``: the sign of
    ``a - b`` the paper reports (+1, -1; 0 = "no difference" within ``±margin``). ``dataset``: one
    data set, a tuple of data sets pooled as strata (pairs stay within a data set), or None for
    every data set in the rows. ``per_clip``: average the differences of one clip id over its data
    sets first (Table 4, whose "data sets" are the two sources of one mixture, not independent
    clips). ``quantity``: ``"value"`` or ``"log10 best_iteration"`` (a ratio of iterations becomes
    a difference). ``b_metric`` / ``b_selection``: B's metric / selection rule when they differ from
    A's (a chance level stored beside each score; a baseline's rows). ``family``: the claims whose
    p-values are corrected together (default: the paper and source, i.e. one table or figure).
    """

    id: str
    paper: int
    text: str
    source: str      # "Table 1", "Figure 2", ...
    notebook: str    # results/<notebook>/rows.csv holds the rows
    link: str        # the table / figure it comes from, relative to results/ ("<notebook>/<file>.md")
    metric: str
    a: str
    b: str | float | tuple[str, ...]
    expect: int = 1
    dataset: str | tuple[str, ...] | None = None
    task: str | None = None
    selection: str = "oracle"
    quantity: str = "value"
    margin: float = 0.0
    b_label: str = ""
    b_metric: str | None = None
    b_selection: str | None = None
    per_clip: bool = False
    family: str = ""

    def __post_init__(self):
        if self.expect not in (-1, 0, 1):
            raise ClaimError(f"claim {self.id}: expect must be -1, 0 or +1, not {self.expect}")
        if self.expect == 0 and self.margin <= 0:
            raise ClaimError(f"claim {self.id}: a no-difference claim needs a margin > 0")
        if self.quantity not in ("value", "log10 best_iteration"):
            raise ClaimError(f"claim {self.id}: unknown quantity {self.quantity!r}")
        if self.a == self.b and self.b_metric in (None, self.metric) and self.b_selection in (None, self.selection):
            raise ClaimError(f"claim {self.id}: A and B are the same rows ({self.a}, {self.metric})")

    @property
    def compared(self) -> str:
        if isinstance(self.b, tuple):
            return f"{self.a} − each of {', '.join(self.b)}"
        other = self.b_label or (f"{self.b:g}" if isinstance(self.b, (int, float)) else str(self.b))
        return f"{self.a} − {other}"

    @property
    def metric_b(self) -> str:
        return self.b_metric or self.metric

    @property
    def selection_b(self) -> str:
        return self.b_selection or self.selection

    @property
    def family_key(self) -> str:
        return self.family or f"paper {self.paper}, {self.source}"

    @property
    def datasets(self) -> tuple[str, ...] | None:
        return (self.dataset,) if isinstance(self.dataset, str) else self.dataset


@dataclass(frozen=True)
class Effect:
    """A claim measured on rows: its exact test (None when nothing paired), the one-sided p-values
    towards the paper's side and the other side, the clips on the paper's side, and a verdict
    (uncorrected until :func:`decide` corrects it over the claim's family)."""

    n: int
    test: PairedTest | None
    p_paper: float
    p_other: float
    agree: int
    verdict: str
    p_min: float = math.nan
    p_adjusted: float = math.nan
    profile: str = ""
    data: str = ""
    closest: str = ""

    @property
    def mean(self) -> float:
        return self.test.mean if self.test else math.nan

    @property
    def estimate(self) -> float:
        return self.test.estimate if self.test else math.nan

    @property
    def low(self) -> float:
        return self.test.low if self.test else math.nan

    @property
    def high(self) -> float:
        return self.test.high if self.test else math.nan


# ----------------------------------------------------------------------------- the rule
def bootstrap_interval(diffs, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``diffs`` ``(n,)`` (NaN, NaN when n < 2); a
    description of spread, never a verdict (at n = 3 it is about [min, max])."""
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size < 2:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    low, high = np.percentile(d[idx].mean(axis=1), [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return float(low), float(high)


def one_sided(diffs, strata, expect: int, margin: float = 0.0) -> tuple[PairedTest, float, float, int]:
    """The exact test of ``diffs`` ``(n,)`` for a paper direction ``expect``: ``(test, p towards the
    paper's side, p towards the other side, clips on the paper's side)``. For ``expect = 0``: TOST
    against ``±margin`` (p of "inside") and "beyond the margin" (both tails, doubled)."""
    d = np.asarray(diffs, dtype=np.float64)
    test = paired_test(d, strata)
    if expect > 0:
        return test, test.p_greater, test.p_less, int((d > 0).sum())
    if expect < 0:
        return test, test.p_less, test.p_greater, int((d < 0).sum())
    inside = max(paired_test(d + margin, strata).p_greater, paired_test(d - margin, strata).p_less)
    beyond = min(1.0, 2 * min(paired_test(d - margin, strata).p_greater, paired_test(d + margin, strata).p_less))
    return test, inside, beyond, int((np.abs(d) <= margin).sum())


def verdict(p_paper: float, p_other: float, agree: int, n: int, alpha: float = ALPHA) -> str:
    """The verdict of (corrected) one-sided p-values with ``agree`` of ``n`` clips on the paper's side."""
    if n == 0:
        return NOT_RUN
    if p_paper <= alpha:
        return REPRODUCED
    if p_other <= alpha:
        return CONTRADICTED
    return CONSISTENT if 2 * agree > n else INCONCLUSIVE


def effect_of(diffs, expect: int, margin: float = 0.0, strata=None, **labels) -> Effect:
    """:class:`Effect` of per-clip differences ``diffs`` ``(n,)`` (non-finite ones already removed)."""
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size == 0:
        return Effect(0, None, math.nan, math.nan, 0, NOT_RUN, **labels)
    test, p_paper, p_other, agree = one_sided(d, strata, expect, margin)
    return Effect(int(d.size), test, p_paper, p_other, agree, verdict(p_paper, p_other, agree, int(d.size)),
                  p_min=test.p_min, **labels)


def verdict_text(e: Effect) -> str:
    """``"reproduced"``, ``"consistent in 3 of 3 (p = 0.125)"``, ...: the verdict with its evidence."""
    if e.verdict in (CONSISTENT, INCONCLUSIVE):
        p = e.p_adjusted if np.isfinite(e.p_adjusted) else e.p_paper
        return f"{e.verdict} in {e.agree} of {e.n} (p = {p:.3g})"
    return e.verdict


# ----------------------------------------------------------------------------- rows -> differences
def _side_rows(rows: pd.DataFrame, design, metric: str, selection: str | None) -> pd.Series:
    hit = (rows["design"] == design) & (rows["metric"] == metric)
    if selection is not None and "selection" in rows:
        hit &= rows["selection"] == selection
    return hit


def claim_rows(rows: pd.DataFrame, claim: Claim, profile: str | None = None,
               finite_only: bool = True) -> pd.DataFrame:
    """The successful rows of ``claim`` (A: ``a``, ``metric``, ``selection``; B: ``b``,
    ``metric_b``, ``selection_b``; its task and data sets) in one profile: ``profile``, or else the
    largest that has such rows. Adds ``side`` ("a" / "b") and ``x`` (the claim's quantity); one row
    per (side, clip), the last recorded when a clip was fitted twice."""
    missing = {"design", "metric", "value", "clip_id", "dataset"} - set(rows.columns)
    if missing:
        raise ClaimError(f"result rows lack the columns {sorted(missing)}")
    is_a = _side_rows(rows, claim.a, claim.metric, claim.selection)
    is_b = (_side_rows(rows, claim.b, claim.metric_b, claim.selection_b)
            if not isinstance(claim.b, (int, float)) else pd.Series(False, index=rows.index))
    keep = is_a | is_b
    keep &= rows["status"].fillna("ok").eq("ok") if "status" in rows else True
    if claim.task is not None and "task" in rows:
        keep &= rows["task"].isna() | (rows["task"] == claim.task)
    if claim.datasets is not None:
        keep &= rows["dataset"].isin(claim.datasets)
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
    """Per-clip ``a - b`` of ``claim`` (index: data set, clip id; with ``per_clip``, the mean over a
    clip's data sets, data set ``"all"``); clips without both sides are dropped."""
    sel = claim_rows(rows, claim, profile)
    a = sel[sel["side"] == "a"].set_index(_PAIR_KEY)["x"]
    if isinstance(claim.b, (int, float)):
        diff = a - float(claim.b)
    else:
        diff = (a - sel[sel["side"] == "b"].set_index(_PAIR_KEY)["x"]).dropna()
    if claim.per_clip and len(diff):
        diff = diff.groupby(level="clip_id").mean()
        diff.index = pd.MultiIndex.from_arrays([["all"] * len(diff), diff.index], names=_PAIR_KEY)
    return diff.rename("diff")


def paired_effect(rows: pd.DataFrame, claim: Claim, profile: str | None = None) -> Effect:
    """The measured :class:`Effect` of ``claim`` on ``rows`` (uncorrected verdict)."""
    if isinstance(claim.b, tuple):
        return _every_effect(rows, claim, profile)
    if rows.empty:
        return effect_of([], claim.expect, claim.margin)
    sel = claim_rows(rows, claim, profile)
    diffs = paired_differences(sel, claim, profile=None)
    labels = {"profile": ", ".join(sorted(set(sel["profile"].astype(str)))) if "profile" in sel and len(diffs) else "",
              "data": ", ".join(sorted(set(sel["source"].astype(str)))) if "source" in sel and len(diffs) else ""}
    effect = effect_of(diffs.to_numpy(), claim.expect, claim.margin,
                       strata=diffs.index.get_level_values("dataset").to_numpy(), **labels)
    if effect.verdict == NOT_RUN:
        ran = set(claim_rows(rows, claim, profile, finite_only=False)["side"])
        if ran == {"a", "b"} or (ran == {"a"} and isinstance(claim.b, (int, float))):
            effect = replace(effect, verdict=UNDEFINED)  # both sides ran, the metric is NaN on every clip
    return effect


def _every_effect(rows: pd.DataFrame, claim: Claim, profile: str | None) -> Effect:
    """"A better than each of ``claim.b``" as an intersection-union test: it holds only if every
    comparison holds, so its p-value is the largest of theirs (no correction among them); it fails
    if any fails (Bonferroni over the comparisons). Comparisons without rows are left out (a profile
    may run fewer designs). The effect shown is the closest competitor's."""
    parts = [(b, paired_effect(rows, replace(claim, b=b), profile)) for b in claim.b]
    ran = [(b, e) for b, e in parts if e.n > 0]
    if not ran:
        undefined = any(e.verdict == UNDEFINED for _, e in parts)
        return replace(parts[0][1], verdict=UNDEFINED if undefined else NOT_RUN)
    b, closest = max(ran, key=lambda be: (be[1].p_paper, -claim.expect * be[1].mean))
    p_other = min(1.0, len(ran) * min(e.p_other for _, e in ran))
    n, agree = min(e.n for _, e in ran), min(e.agree for _, e in ran)
    return replace(closest, n=n, agree=agree, p_other=p_other, p_min=max(e.p_min for _, e in ran),
                   verdict=verdict(closest.p_paper, p_other, agree, n), closest=b)


def decide(effects: list[Effect], families: list[str], alpha: float = ALPHA) -> list[Effect]:
    """Correct the p-values of ``effects`` over their ``families`` (Holm's step-down with Tarone's
    count, :func:`dap.claims.paired_test.holm_tarone`, each side separately) and give their verdicts."""
    out = list(effects)
    for family in dict.fromkeys(families):
        idx = [i for i, f in enumerate(families) if f == family and effects[i].n > 0]
        if not idx:
            continue
        p_min = [effects[i].p_min for i in idx]
        paper_side = holm_tarone([effects[i].p_paper for i in idx], p_min, alpha)
        other_side = holm_tarone([effects[i].p_other for i in idx], p_min, alpha)
        for j, i in enumerate(idx):
            e = effects[i]
            out[i] = replace(e, p_adjusted=float(paper_side[j]),
                             verdict=verdict(paper_side[j], other_side[j], e.agree, e.n, alpha))
    return out


def against_reference(effect: Effect) -> str:
    """``"beats"``, ``"loses"`` or ``"inconclusive (k of n)"`` for a method-vs-reference comparison
    already corrected by :func:`decide` ("—" when nothing paired)."""
    if effect.n == 0:
        return "—"
    return {REPRODUCED: BEATS, CONTRADICTED: LOSES}.get(effect.verdict,
                                                        f"inconclusive ({effect.agree} of {effect.n} better)")


# ----------------------------------------------------------------------------- one rule for ties
def best_of(values: pd.Series, lower_is_better: bool = False) -> str | None:
    """The index label of the best of ``values`` (NaN ignored), or None when the best is tied: a
    tie makes no claim, in the tables as in CLAIMS.md."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return None
    v = -v if lower_is_better else v
    top = v.max()
    return None if int((v >= top - TIE).sum()) > 1 else v.idxmax()


def best_design_verdicts(rows: pd.DataFrame, best: dict[tuple[str, str], str | None], designs, selection: str,
                         lower_is_better=()) -> pd.DataFrame:
    """Per table column ``(dataset, metric)``: is the paper's best design ``best[column]`` better
    than every other design of ``designs`` on the same clips? One paired test per other design,
    corrected together over the whole table (:func:`decide`); a column is reproduced when all its
    comparisons are, contradicted when any is. A column whose paper best is None (a tie) makes no
    claim and is left out. Columns ``dataset, metric, best_in_paper, verdict, n``."""
    claims, effects = [], []
    for (dataset, metric), top in best.items():
        if top is None:
            continue
        sign = -1 if metric in lower_is_better else 1
        for other in designs:
            if other != top:
                c = Claim(id="", paper=1, text="", source="", notebook="", link="", metric=metric, a=top, b=other,
                          expect=sign, dataset=dataset, selection=selection)
                claims.append(((dataset, metric), top))
                effects.append(paired_effect(rows, c))
    effects = decide(effects, ["table"] * len(effects))
    out = []
    for column, top in dict.fromkeys(claims):
        mine = [e for (col, _), e in zip(claims, effects) if col == column and e.verdict not in (NOT_RUN, UNDEFINED)]
        verdicts = [e.verdict for e in mine]
        v = (NOT_RUN if not verdicts else CONTRADICTED if CONTRADICTED in verdicts
             else REPRODUCED if all(x == REPRODUCED for x in verdicts) else INCONCLUSIVE)
        out.append({"dataset": column[0], "metric": column[1], "best_in_paper": top, "verdict": v,
                    "n": min((e.n for e in mine), default=0)})
    return pd.DataFrame(out, columns=["dataset", "metric", "best_in_paper", "verdict", "n"])

