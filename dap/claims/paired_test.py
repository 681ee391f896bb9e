"""Exact paired tests for claims made on a handful of clips, and their correction for many claims.

The test is Wilcoxon's signed-rank test in its exact, conditional form: under "no difference" each
paired difference is as likely to be positive as negative (its sign flips with probability 1/2,
independently of the others), so the null distribution of the statistic is enumerated exactly
(a dynamic programme over the ranks), whatever ``n`` and whatever the ties. Nothing is sampled and
nothing is approximated by a normal law, which matters at n = 3 to 9.

* **statistic**: the sum of the ranks of ``|d|`` over the positive differences; zero differences
  are dropped (Wilcoxon's convention); tied ``|d|`` share their mid-rank (ranks are doubled so that
  mid-ranks stay integers).
* **strata** (a claim pooled over data sets): ranks are taken within each data set and the
  statistics summed, so a data set with larger effects cannot swamp the others, and each clip stays
  paired with itself (a stratified signed-rank test).
* **smallest attainable p-value**: with ``n'`` non-zero differences, one-sided p can never fall
  below ``2**-n'`` (every difference on one side). At n = 3 that is 0.125: three clips agreeing in
  sign are *not* evidence.
* **correction**: Holm's step-down over a family of claims, with Tarone's refinement for discrete
  tests: a claim whose smallest attainable p-value already exceeds its threshold can never be
  rejected, so it does not count in the number of claims. When every claim could reach the
  threshold this is exactly Holm.
* **interval**: the Hodges-Lehmann estimate (median of the Walsh averages) and its exact
  distribution-free interval from the same signed-rank distribution; infinite when ``n`` is too small
  for any interval to reach the confidence (n < 6 at 95 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedTest:
    """The exact test of paired differences ``d`` (A − B per clip).

    ``n``: pairs; ``n_nonzero``: pairs with ``d != 0`` (the test's sample size); ``positive``: pairs
    with ``d > 0``; ``p_greater`` / ``p_less``: exact one-sided p-values of "A > B" / "A < B";
    ``p_min``: the smallest one-sided p-value attainable with these pairs (``2**-n_nonzero``).
    """

    n: int
    n_nonzero: int
    positive: int
    mean: float
    estimate: float
    low: float
    high: float
    p_greater: float
    p_less: float
    p_min: float


def _doubled_midranks(x: np.ndarray) -> np.ndarray:
    """Twice the mid-ranks (1-based) of ``x`` ``(n,)``: integers even when values tie."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.int64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + 1) + (j + 1)  # twice the mean of the ranks i+1 .. j+1
        i = j + 1
    return ranks


def _scores(diffs: np.ndarray, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per non-zero difference: its doubled mid-rank of ``|d|`` within its stratum, and its sign."""
    keep = diffs != 0
    d, s = diffs[keep], strata[keep]
    ranks = np.empty(len(d), dtype=np.int64)
    for level in np.unique(s):
        at = s == level
        ranks[at] = _doubled_midranks(np.abs(d[at]))
    return ranks, d > 0


def null_distribution(scores: np.ndarray) -> np.ndarray:
    """``P(T = t)`` for ``t = 0 .. sum(scores)``, where ``T`` sums each integer score ``(n,)`` with
    probability 1/2 independently (the sign-flip null of a signed-rank statistic)."""
    dist = np.zeros(int(np.sum(scores)) + 1)
    dist[0] = 1.0
    top = 0
    for s in np.asarray(scores, dtype=np.int64):
        shifted = np.zeros_like(dist)
        shifted[s:top + s + 1] = dist[:top + 1]
        dist = 0.5 * (dist + shifted)
        top += s
    return dist


def hodges_lehmann(diffs, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate of the paired difference and its exact interval.

    Args:
        diffs: ``(n,)`` paired differences.
        confidence: two-sided confidence of the interval.
    Returns:
        ``(estimate, low, high)``; ``low = -inf, high = inf`` when ``n`` is too small for any
        interval to reach ``confidence``; all NaN when ``n = 0``.
    """
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size == 0:
        return math.nan, math.nan, math.nan
    walsh = np.sort((d[:, None] + d[None, :])[np.triu_indices(d.size)] / 2)
    estimate = float(np.median(walsh))
    cdf = np.cumsum(null_distribution(np.arange(1, d.size + 1)))  # W+ of n untied ranks
    # k Walsh averages are cut from each end when P(W+ <= k - 1) <= (1 - confidence) / 2
    k = int(np.searchsorted(cdf, (1 - confidence) / 2, side="right"))
    if k == 0:
        return estimate, -math.inf, math.inf
    return estimate, float(walsh[k - 1]), float(walsh[walsh.size - k])


def paired_test(diffs, strata=None) -> PairedTest:
    """The exact (stratified) signed-rank test of ``diffs`` ``(n,)``.

    Args:
        diffs: finite paired differences A − B, one per clip.
        strata: ``(n,)`` labels (e.g. the data set of each clip); ranks are taken within each.
    Returns:
        :class:`PairedTest`; with no non-zero difference both p-values are 1.
    """
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)):
        raise ValueError("paired_test needs finite differences")
    s = np.zeros(d.size, dtype=np.int64) if strata is None else np.asarray(strata).reshape(-1)
    if s.size != d.size:
        raise ValueError(f"{s.size} strata labels for {d.size} differences")
    ranks, positive = _scores(d, s)
    dist = null_distribution(ranks)
    t = int(ranks[positive].sum())
    p_greater = float(min(1.0, dist[t:].sum()))
    p_less = float(min(1.0, dist[:t + 1].sum()))
    estimate, low, high = hodges_lehmann(d)
    return PairedTest(n=int(d.size), n_nonzero=int(ranks.size), positive=int((d > 0).sum()),
                      mean=float(d.mean()) if d.size else math.nan, estimate=estimate, low=low, high=high,
                      p_greater=p_greater, p_less=p_less, p_min=float(0.5 ** ranks.size))


def tarone_count(p_min, alpha: float = ALPHA) -> int:
    """Tarone's number of claims to correct for: the smallest ``K >= 1`` such that at most ``K``
    claims of ``p_min`` ``(m,)`` could reach ``alpha / K`` at all."""
    p_min = np.asarray(p_min, dtype=np.float64)
    for k in range(1, p_min.size + 1):
        if int(np.sum(p_min <= alpha / k)) <= k:
            return k
    return max(1, p_min.size)


def holm_tarone(p, p_min, alpha: float = ALPHA) -> np.ndarray:
    """Adjusted p-values ``(m,)`` of Holm's step-down with Tarone's count at each step: a claim is
    rejected at level ``alpha`` exactly when its adjusted value is ``<= alpha``. NaN (claims
    without rows) stay NaN and do not count."""
    p = np.asarray(p, dtype=np.float64)
    p_min = np.asarray(p_min, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    remaining = [i for i in np.argsort(p, kind="stable") if np.isfinite(p[i])]
    running = 0.0
    while remaining:
        k = tarone_count(p_min[remaining], alpha)
        i = remaining.pop(0)
        running = max(running, min(1.0, k * p[i]))
        out[i] = running
    return out


def smallest_n(strata: int, family_strata, alpha: float = ALPHA, largest: int = 1000) -> int:
    """The fewest clips per data set at which a claim pooled over ``strata`` data sets could be
    decided (every clip on one side), when each claim of its family, pooled over ``family_strata``
    ``(m,)`` data sets each, has that many clips per data set too (Tarone's count then depends on n)."""
    family_strata = np.asarray(family_strata)
    for n in range(1, largest + 1):
        if 0.5 ** (n * strata) <= alpha / tarone_count(0.5 ** (n * family_strata), alpha):
            return n
    raise ValueError(f"no n up to {largest} decides a claim over {strata} data sets")
