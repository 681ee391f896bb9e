"""``results/CLAIMS.md``: every claim of :data:`dap.claims.registry.CLAIMS` decided on the stored rows
of a run with the rule of :mod:`dap.claims.rule` (exact paired test, Holm-Tarone correction per table or
figure), each beside the same test of the paper's method against the trivial answer and the best
classical baseline of its column.

It sits above the studies (it reads their row formats, e.g. separation's per-source metrics), while
:mod:`dap.claims.rule` itself is statistics only, so that tables can use the rule too.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dap.claims.paired_test import ALPHA, smallest_n
from dap.claims.registry import CLAIMS, UNTESTED, reference_family, references_of
from dap.claims.rule import (CONSISTENT, CONTRADICTED, INCONCLUSIVE, LOSES, NOT_RUN, REPRODUCED, UNDEFINED, BEATS,
                             Claim, ClaimError, Effect, against_reference, decide, paired_effect, verdict_text)
from dap.config.costs import study_cost
from dap.core.files import atomic_write_text
from dap.core.store import ResultStore
from dap.studies.common import BASELINE_FILE
from dap.studies.separation import TRIVIAL_FILE, per_source_rows

#: The row files of a notebook's folder that claims read: fits, baselines, stored trivial answers.
ROW_FILES = ("rows.csv", BASELINE_FILE, TRIVIAL_FILE)


#: Where a reference folder keeps a notebook's row files, compressed: ``rows/<notebook>/<file>.gz``.
REFERENCE_ROWS = "rows"


def row_files(results_dir: str | Path, notebook: str) -> list[Path]:
    """The row files (:data:`ROW_FILES`) of ``notebook`` under ``results_dir``: a run's folder
    (``<notebook>/rows.csv``) or a reference's (``rows/<notebook>/rows.csv.gz``); a run's file wins
    where both exist."""
    root = Path(results_dir)
    found = []
    for name in ROW_FILES:
        for candidate in (root / notebook / name, root / REFERENCE_ROWS / notebook / f"{name}.gz"):
            if candidate.exists():
                found.append(candidate)
                break
    return found


#: A notebook's results folder is named after it (``NN_name``); other folders of a run or a reference
#: (benchmark outputs such as ``oracle_peak/``) may keep rows of their own and are not notebooks.
NOTEBOOK_FOLDER = re.compile(r"\d\d_\w+")


def notebooks_with_rows(results_dir: str | Path) -> list[str]:
    """The notebooks (folders named like :data:`NOTEBOOK_FOLDER`) that have row files under
    ``results_dir`` in either layout (:func:`row_files`).

    Args:
        results_dir: a run's results folder or a reference folder.

    Returns:
        Their folder names, sorted (empty when there are none, or no such folder).
    """
    root = Path(results_dir)
    bases = [b for b in (root, root / REFERENCE_ROWS) if b.is_dir()]
    names = {p.name for b in bases for p in b.iterdir() if p.is_dir() and NOTEBOOK_FOLDER.fullmatch(p.name)}
    return sorted(n for n in names if row_files(root, n))


def load_rows(results_dir: str | Path, notebook: str, split_sources: bool = True) -> pd.DataFrame:
    """Every row file of ``notebook`` under ``results_dir`` (:func:`row_files`), with separation metrics
    split per source unless ``split_sources`` is False (then as the grid stored them: one data set per
    fit, the mixture's); empty when none exists."""
    frames = [ResultStore(path.parent, path.name).rows for path in row_files(results_dir, notebook)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    return per_source_rows(rows) if split_sources else rows


def _strongest(rows: pd.DataFrame, candidates: list[Claim], profile: str | None) -> tuple[Claim | None, Effect | None]:
    """The candidate reference the method does worst against (smallest mean advantage on the paired
    clips) and its effect; ``(None, None)`` when no candidate pairs with the method."""
    measured = [(c, paired_effect(rows, c, profile)) for c in candidates]
    measured = [(c, e) for c, e in measured if e.n > 0]
    if not measured:
        return None, None
    return min(measured, key=lambda ce: ce[0].expect * ce[1].mean)


def evaluate_claims(results_dir: str | Path, claims=None, profile: str | None = None) -> pd.DataFrame:
    """One row per claim of ``claims`` (default: :data:`dap.claims.registry.CLAIMS`) with its exact
    test, its corrected p-value and verdict, and the method against the trivial answer and the best
    baseline, from the row files under ``results_dir``."""
    claims = CLAIMS if claims is None else claims
    cache: dict[str, pd.DataFrame] = {}

    def rows_of(notebook):
        if notebook not in cache:
            cache[notebook] = load_rows(results_dir, notebook)
        return cache[notebook]

    effects = decide([paired_effect(rows_of(c.notebook), c, profile) for c in claims], [c.family_key for c in claims])
    # one test per distinct comparison: several claims of a column share their method's references
    unique: dict[tuple, tuple[Claim, Effect, str]] = {}
    of_claim: dict[tuple[int, str], tuple] = {}
    for i, c in enumerate(claims):
        for kind, candidates in references_of(c).items():
            key = (reference_family(c), kind, tuple(replace(x, id="") for x in candidates))
            if key not in unique:
                chosen, e = _strongest(rows_of(c.notebook), candidates, profile)
                unique[key] = (chosen, e, reference_family(c))
            if unique[key][0] is not None:
                of_claim[(i, kind)] = key
    keys = [k for k, (chosen, _, _) in unique.items() if chosen is not None]
    decided = decide([unique[k][1] for k in keys], [unique[k][2] for k in keys])
    by_key = {k: (unique[k][0], e) for k, e in zip(keys, decided)}
    against = {ik: by_key[key] for ik, key in of_claim.items()}

    out = []
    for i, (c, e) in enumerate(zip(claims, effects)):
        rec = {"id": c.id, "paper": c.paper, "claim": c.text, "source": c.source, "family": c.family_key,
               "link": _link(Path(results_dir), c), "made_by": Path(c.link).parent.name,
               "compared": c.compared + (f" (closest: {e.closest})" if e.closest else ""),
               "metric": c.metric + (f" − {c.b_metric}" if c.b_metric else "")
               + (f" ({c.quantity})" if c.quantity != "value" else ""),
               "dataset": _datasets(c), "selection": c.selection, "expect": c.expect, "margin": c.margin,
               "n": e.n, "agree": e.agree, "mean": e.mean, "estimate": e.estimate, "low": e.low, "high": e.high,
               "p": e.p_paper, "p_min": e.p_min, "p_holm": e.p_adjusted, "profile": e.profile, "data": e.data,
               "verdict": e.verdict, "verdict_text": verdict_text(e)}
        for kind in ("trivial", "baseline"):
            chosen, re_ = against.get((i, kind), (None, None))
            rec[f"vs_{kind}"] = "—" if chosen is None else against_reference(re_)
            rec[f"{kind}_name"] = "" if chosen is None else (chosen.b_label or str(chosen.b))
            rec[f"{kind}_p_holm"] = np.nan if chosen is None else re_.p_adjusted
        out.append(rec)
    return pd.DataFrame(out)


def _datasets(c: Claim) -> str:
    if c.datasets is None:
        return "all"
    return " + ".join(c.datasets) + (" (pooled)" if len(c.datasets) > 1 else "")


def _link(results_dir: Path, c: Claim) -> str:
    """The claim's table relative to ``results_dir``: a run's layout ``<notebook>/<file>``, or the flat
    layout of results/reference/ when only the file itself is there."""
    flat = Path(c.link).name
    return flat if (results_dir / flat).exists() and not (results_dir / c.link).exists() else c.link


def _effect(r) -> str:
    if r["n"] == 0:
        return "—"
    if not np.isfinite(r["low"]):
        return f"{r['estimate']:+.2f} [−∞, +∞]" if np.isinf(r["low"]) else f"{r['estimate']:+.2f}"
    return f"{r['estimate']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]"


def _reference(r, kind: str) -> str:
    if r[f"vs_{kind}"] == "—":
        return "—"
    return f"{r[f'vs_{kind}']} ({r[f'{kind}_name']})"


def headline(table: pd.DataFrame) -> str:
    """The counts CLAIMS.md leads with."""
    v = table["verdict"]
    rep = v == REPRODUCED
    return (f"reproduced {int(rep.sum())} (of which better than the best baseline "
            f"{int((rep & (table['vs_baseline'] == BEATS)).sum())}, and a baseline does better "
            f"{int((rep & (table['vs_baseline'] == LOSES)).sum())}), contradicted {int((v == CONTRADICTED).sum())}, "
            f"consistent but not decided {int((v == CONSISTENT).sum())}, inconclusive {int((v == INCONCLUSIVE).sum())}, "
            f"undefined {int((v == UNDEFINED).sum())}, not run {int((v == NOT_RUN).sum())}")


RULE = ("**Rule** (docs/claims.md). Per clip, the difference A − B of the two compared designs / configurations "
        "on the same clip (B may be another measure of the same rows, such as the chance level stored per "
        "fragment). The exact Wilcoxon signed-rank test (conditional on the differences' sizes; stratified by "
        "data set when a claim is pooled over several) gives a one-sided p-value towards the paper's side and one "
        "towards the other; each is corrected over the claims of its table or figure by Holm's step-down with "
        "Tarone's count (a claim that cannot reach the threshold at its n does not count). "
        f"**reproduced**: corrected p ≤ {ALPHA} on the paper's side; **contradicted**: likewise on the other "
        "side; otherwise **consistent in k of n** (more than half the clips on the paper's side) or "
        "**inconclusive**. With n clips no p-value can fall below 2^-n: three clips agreeing in sign give "
        "p = 0.125, never a reproduction. A no-difference claim is two one-sided tests against ±margin. "
        "Effect: Hodges-Lehmann estimate of the paired difference with its exact 95 % interval (infinite below "
        "6 clips). **vs trivial / vs best baseline**: the paper's method (paper 1: the proposed design; paper 2: "
        "the claim's configuration) against the trivial answer and the strongest classical baseline of the same "
        "column, on the same clips, with the same test, corrected per table. Paper 1's claims use the oracle rule "
        "(the authors' protocol); denoising claims are repeated under the blind discrepancy rule (`-blind`).")


def claims_markdown(table: pd.DataFrame, untested=None) -> str:
    """``CLAIMS.md``: the headline, the rule, one table per family, what would decide the rest, and
    the claims no row can test."""
    untested = UNTESTED if untested is None else untested
    lines = ["# Claims of both papers, tested on this run's rows", "",
             f"{len(table) + len(untested)} claims: {len(table)} tested below "
             f"(paper 1: {int((table['paper'] == 1).sum())}, paper 2: {int((table['paper'] == 2).sum())}), "
             f"{len(untested)} that the rows cannot test (last section).", "",
             f"**Headline**: {headline(table)}.", "", RULE, ""]
    for family, group in table.groupby("family", sort=False):
        lines += [f"## {family}", "",
                  "| id | claim | compared | metric | data | n | effect [95 % interval] | p (Holm) | vs trivial | "
                  "vs best baseline | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in group.to_dict("records"):
            p = "—" if not np.isfinite(r["p_holm"]) else f"{r['p_holm']:.3g}"
            lines.append(f"| {r['id']} | {r['claim']} ([{r['source']}]({r['link']})) | {r['compared']} | "
                         f"{r['metric']} | {r['dataset']} | {r['n']} | {_effect(r)} | {p} | "
                         f"{_reference(r, 'trivial')} | {_reference(r, 'baseline')} | {r['verdict_text']} |")
        lines.append("")
    lines += deciding_runs(table)
    lines += ["", "## Claims the rows cannot test", "", "| paper | source | claim | why not tested |", "|---|---|---|---|"]
    lines += [f"| {p} | {s} | {t} | {why} |" for p, s, t, why in untested]
    return "\n".join(lines) + "\n"


#: What the paper profile of paper 2 would need (its training cost is not in dap/costs.py).
_PAPER2_SCALE = ("250 test fragments of the generated corpus (python -m dap corpus wiass, 2000 / 500 / 250); "
                 "training cost not measured")


def deciding_runs(table: pd.DataFrame) -> list[str]:
    """Markdown lines: for each table or figure with undecided claims, the run that would decide them
    (the paper profile), its n, fits and cost from :func:`dap.config.costs.study_cost`."""
    open_ = table[table["verdict"].isin([CONSISTENT, INCONCLUSIVE])]
    if open_.empty:
        return []
    lines = ["## What would decide the undecided claims", "",
             "More clips: with n clips no p-value falls below 2^-n, and the correction divides the threshold "
             "by the number of claims that could reach it (docs/claims.md gives the smallest n per claim). The "
             "`paper` profile has the paper's n; its cost below is the number of fits and fit-iterations it "
             "runs, and the hours they would take one fit at a time on the 2-core CPU of dap/costs.py (paper "
             "widths, linear in clip length).", "",
             "| source | claims undecided here | n here (largest) | paper profile: n | fits | fit-iterations | "
             "2-core CPU hours |", "|---|---|---|---|---|---|---|"]
    for notebook, group in open_.groupby("made_by", sort=False):  # the notebook of the table / figure
        cost = study_cost(notebook, "paper")
        head = (f"| [{group['source'].iloc[0]}]({group['link'].iloc[0]}) (paper {group['paper'].iloc[0]}) | "
                f"{len(group)} | {int(group['n'].max())} | ")
        if cost is None:
            lines.append(head + f"{_PAPER2_SCALE} | — | — | — |")
        else:
            hours = "not measured" if cost["cpu_hours"] is None else f"~{cost['cpu_hours']:,.0f}"
            lines.append(head + f"{cost['n']} | {cost['fits']} | {cost['fit_iterations']:,} | {hours} |")
    return lines


def smallest_n_table(claims=None, alpha: float = ALPHA) -> pd.DataFrame:
    """Per family and number of data sets pooled: the fewest clips per data set at which such a claim
    could be reproduced, if every claim of the family had that many clips per data set and every clip
    agreed (:func:`dap.claims.paired_test.smallest_n`; docs/claims.md shows it)."""
    claims = CLAIMS if claims is None else claims
    strata = pd.DataFrame({"family": [c.family_key for c in claims],
                           "pooled": [1 if c.per_clip or c.datasets is None else len(c.datasets) for c in claims]})
    out = []
    for (family, pooled), g in strata.groupby(["family", "pooled"], sort=False):
        members = strata.loc[strata["family"] == family, "pooled"].to_numpy()
        n = smallest_n(int(pooled), members, alpha)
        out.append({"family": family, "claims in family": len(members), "data sets pooled": int(pooled),
                    "claims": len(g), "smallest n per data set": n})
    order = list(dict.fromkeys(strata["family"]))
    table = pd.DataFrame(out)
    return (table.assign(_f=table["family"].map(order.index)).sort_values(["_f", "data sets pooled"],
            ascending=[True, False], kind="stable").drop(columns="_f").reset_index(drop=True))


def smallest_n_markdown(table: pd.DataFrame | None = None) -> str:
    """The table of :func:`smallest_n_table` as markdown (pasted into docs/claims.md; a test checks it)."""
    table = smallest_n_table() if table is None else table
    lines = ["| family | claims in family | data sets pooled | claims | smallest n per data set |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['claims in family']} | {r['data sets pooled']} | {r['claims']} | "
              f"{r['smallest n per data set']} |" for r in table.to_dict("records")]
    return "\n".join(lines) + "\n"


def write_claims(results_dir: str | Path, out: str | Path | None = None, profile: str | None = None) -> Path:
    """Evaluate every registered claim on the rows under ``results_dir`` and write ``CLAIMS.md``
    (default ``<results_dir>/CLAIMS.md``) and ``CLAIMS.csv`` beside it; returns the markdown's path.
    Works with any subset of notebooks run: claims without rows are "not run in this profile"."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ClaimError(f"{results_dir} is not a folder of results (run ./run_all.sh first)")
    out = Path(out) if out is not None else results_dir / "CLAIMS.md"
    table = evaluate_claims(results_dir, profile=profile)
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    atomic_write_text(out.with_suffix(".csv"), buf.getvalue())
    return atomic_write_text(out, claims_markdown(table))
