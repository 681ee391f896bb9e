"""Paper 2's Figure 2 tables: medians per configuration and paired per-fragment comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dap.claims.rule import bootstrap_interval
from dap.wiass.configurations import EVALUATIONS
from dap.wiass.evaluate import ALIGNMENT_METRICS, SEPARATION_METRICS
from dap.wiass.references import REFERENCES

#: Every evaluated configuration, in the tables' default order.
EVALUATED = tuple(EVALUATIONS)
#: The only numbers of Figure 2 the paper states in its text (section 5): median SDR in dB.
PAPER_MEDIAN_SDR = {"BL1": 3.0, "BL2": 3.33}
#: Metrics where lower is better (for paired comparisons).
LOWER_IS_BETTER = ("L1", "PES", "EPS", "alignment_distance")


def alignment_means(by: pd.DataFrame, counts: bool = False) -> dict:
    """Per alignment measure over ``by`` (a row per fragment, a column per measure): the mean,
    its number of fragments (when ``counts``), its percentile-bootstrap 95 % interval over
    fragments and the mean chance / content-blind (``proportional``) levels (NaN where absent)."""
    rec = {}
    for m in ALIGNMENT_METRICS:
        v = by[m].dropna() if m in by else pd.Series(dtype=float)
        rec[m] = float(v.mean()) if len(v) else np.nan
        if counts:
            rec[f"{m}_n"] = int(len(v))
        rec[f"{m}_low"], rec[f"{m}_high"] = bootstrap_interval(v.to_numpy())
        for ref in ("chance", "proportional"):
            key = f"{ref}_{m}"
            rec[key] = float(by[key].mean()) if key in by and by[key].notna().any() else np.nan
    return rec


def summary_table(rows: pd.DataFrame, configurations=EVALUATED) -> pd.DataFrame:
    """One row per configuration, then one per reference estimate found in ``rows``.

    Columns: the median over fragments of SDR, SAR, SIR, PES, EPS, L1 (NaN fragments skipped) and
    their counts, summed PES / EPS frame counts, the mean alignment measures with a bootstrap 95 %
    interval over fragments and the mean chance / content-blind levels on the same fragments, the
    paper's number where it states one, and ``kind`` = ``"model"`` or ``"reference"``."""
    ok = rows[rows["status"].fillna("ok") == "ok"].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce")
    present = set(ok["design"])
    out = []
    for c in [*configurations, *(r for r in REFERENCES if r in present)]:
        g = ok[ok["design"] == c]
        if g.empty:
            continue
        by = g.pivot_table(index="clip_id", columns="metric", values="value", aggfunc="first")
        rec = {"configuration": c, "kind": "reference" if c in REFERENCES else "model",
               "n_fragments": int(by.shape[0])}
        for m in SEPARATION_METRICS:
            v = by[m].dropna() if m in by else pd.Series(dtype=float)
            rec[f"{m}_median"] = float(v.median()) if len(v) else np.nan
            rec[f"{m}_n"] = int(len(v))
        for m in ("n_pes_frames", "n_eps_frames", "n_windows"):
            rec[m] = int(by[m].sum()) if m in by else 0
        rec.update(alignment_means(by))
        rec["paper_SDR_median"] = PAPER_MEDIAN_SDR.get(c, np.nan)
        rec["failed"] = int((rows[(rows["design"] == c)]["status"] == "failed").sum())
        out.append(rec)
    return pd.DataFrame(out)


def fmt(x, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, or a dash for a missing (None / NaN) value."""
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _with_interval(r: dict, m: str, digits: int = 3) -> str:
    """``mean [low, high] (chance c)`` of an alignment measure, or a dash."""
    if np.isnan(r[m]):
        return "—"
    ci = "" if np.isnan(r[f"{m}_low"]) else f" [{r[f'{m}_low']:.{digits}f}, {r[f'{m}_high']:.{digits}f}]"
    chance = r.get(f"chance_{m}", np.nan)
    return f"{r[m]:.{digits}f}{ci} (chance {fmt(chance, digits)})"


def markdown_summary(table: pd.DataFrame, caption: str) -> str:
    """The summary table as markdown under its caption (models, then the reference estimates)."""
    head = ["Config", "SDR", "SAR", "SIR", "PES (frames)", "EPS (frames)", "test L1",
            "align. acc. [95 % CI] (chance)", "segment acc. [95 % CI] (chance)", "paper SDR"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):
        name = r["configuration"] if r["kind"] == "model" else f"*ref: {r['configuration']}*"
        lines.append("| " + " | ".join([
            name, fmt(r["SDR_median"]), fmt(r["SAR_median"]), fmt(r["SIR_median"]),
            f"{fmt(r['PES_median'])} ({r['n_pes_frames']})",
            f"{fmt(r['EPS_median'])} ({r['n_eps_frames']})", fmt(r["L1_median"], 5),
            _with_interval(r, "alignment_accuracy"), _with_interval(r, "segment_accuracy"),
            fmt(r["paper_SDR_median"])]) + " |")
    note = ("\nMedians over test fragments of the per-fragment scores (dB; SDR / SAR / SIR higher is "
            "better, PES / EPS lower is better); in brackets the number of 1-s frames PES / EPS "
            "average over, summed over fragments. PES / EPS are energies of the estimate / target "
            "at the stems' own level (embedded stems peak near 0.9), so their absolute values "
            "are not comparable with the paper's. test L1: mean absolute error of the normalised "
            "magnitude (the training loss). Reference rows (*ref:*) are scored with the same "
            "metrics: silence (all-zero target estimate), the best constant per-frequency mask "
            "fitted on the training examples, and the oracle (true target magnitude with the "
            "mixture phase). Alignment: mean over fragments with a percentile-bootstrap 95 % "
            "interval over fragments, beside the exact chance level of a uniformly random argmax "
            "over the attendable steps on the same fragments.\n")
    return f"{caption}\n\n" + "\n".join(lines) + "\n" + note


def beats_reference(rows: pd.DataFrame, configuration: str, reference: str = "constant-mask",
                    metric: str = "L1") -> dict:
    """Paired comparison over test fragments of a configuration with a reference estimate.

    Returns n, the mean difference (reference minus configuration for L1 / PES / EPS, where lower
    is better; configuration minus reference otherwise, so positive = the configuration is better),
    its bootstrap 95 % interval and ``wins`` (fragments where the configuration is better)."""
    ok = rows[(rows["status"].fillna("ok") == "ok") & (rows["metric"] == metric)]
    ok = ok.assign(value=pd.to_numeric(ok["value"], errors="coerce"))
    wide = ok.pivot_table(index="clip_id", columns="design", values="value", aggfunc="first")
    if configuration not in wide or reference not in wide:
        return {"n": 0, "mean": np.nan, "low": np.nan, "high": np.nan, "wins": 0}
    pair = wide[[configuration, reference]].dropna()
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    d = sign * (pair[configuration] - pair[reference]).to_numpy()
    low, high = bootstrap_interval(d)
    return {"n": int(d.size), "mean": float(d.mean()) if d.size else np.nan, "low": low,
            "high": high, "wins": int(np.sum(d > 0))}


#: The paired comparisons of Figure 2's table: (configurations, versus, metric).
COMPARISONS = (("trained", "constant-mask", "L1"), ("trained", "constant-mask", "SDR"),
               ("informed", "BL1", "SDR"), ("informed", "BL2", "SDR"),
               ("informed", "BL1", "PES"), ("informed", "BL2", "PES"))


def comparison_table(rows: pd.DataFrame, configurations=EVALUATED) -> pd.DataFrame:
    """Paired per-fragment comparisons (:func:`beats_reference`) of :data:`COMPARISONS`:
    every evaluated configuration against the constant mask, every informed one against BL1 and
    BL2. ``mean`` > 0 means the configuration is better; ``better`` says whether the interval
    excludes zero on the better side (needs n >= 2)."""
    present = set(rows["design"])
    out = []
    for which, versus, metric in COMPARISONS:
        for c in configurations:
            if c not in present or versus not in present or c == versus:
                continue
            if which == "informed" and c in ("BL1", "BL2"):
                continue
            res = beats_reference(rows, c, versus, metric)
            if res["n"]:
                out.append({"configuration": c, "versus": versus, "metric": metric, **res,
                            "better": bool(res["low"] > 0)})
    return pd.DataFrame(out, columns=["configuration", "versus", "metric", "n", "mean", "low",
                                      "high", "wins", "better"])


def markdown_comparisons(table: pd.DataFrame) -> str:
    """The comparison table as markdown (differences signed so that > 0 = configuration better)."""
    lines = ["| Config | versus | metric | n | mean gain [95 % CI] | fragments better | CI > 0 |",
             "|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        lines.append(f"| {r['configuration']} | {r['versus']} | {r['metric']} | {r['n']} | "
                     f"{r['mean']:+.4g} [{fmt(r['low'], 4)}, {fmt(r['high'], 4)}] | "
                     f"{r['wins']} of {r['n']} | {'yes' if r['better'] else 'no'} |")
    return ("Paired comparisons over the same test fragments: gain = versus minus configuration "
            "for L1 and PES (lower is better), configuration minus versus for SDR; percentile-"
            "bootstrap 95 % interval of the mean gain over fragments.\n\n" + "\n".join(lines) + "\n")
