"""``results/CLAIMS.md``: every claim of :data:`dap.claim_registry.CLAIMS` evaluated on the stored
rows of a run, with the rule of :mod:`dap.claims` (paired differences, bootstrap interval, verdict).

It sits above the studies (it reads their row formats, e.g. separation's per-source metrics), while
:mod:`dap.claims` itself is statistics only, so that tables can use the rule too.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from dap.claims.registry import CLAIMS, UNTESTED
from dap.claims.rule import BOOT_SEED, CONFIDENCE, MIN_N, N_BOOT, Claim, ClaimError, paired_effect, verdict_counts
from dap.core.files import atomic_write_text
from dap.core.store import ResultStore
from dap.config.costs import study_cost
from dap.studies.separation import per_source_rows

def load_rows(results_dir: str | Path, notebook: str) -> pd.DataFrame:
    """``results/<notebook>/rows.csv`` with separation metrics split per source (empty when absent)."""
    path = Path(results_dir) / notebook / "rows.csv"
    if not path.exists():
        return pd.DataFrame()
    return per_source_rows(ResultStore(path.parent).rows)


def evaluate_claims(results_dir: str | Path, claims=None, profile: str | None = None) -> pd.DataFrame:
    """One row per claim of ``claims`` (default: :data:`dap.claim_registry.CLAIMS`) with its
    measured effect from the ``rows.csv`` files under ``results_dir``."""
    cache: dict[str, pd.DataFrame] = {}
    out = []
    for c in CLAIMS if claims is None else claims:
        if c.notebook not in cache:
            cache[c.notebook] = load_rows(results_dir, c.notebook)
        rows = cache[c.notebook]
        e = paired_effect(rows, c, profile)
        out.append({"id": c.id, "paper": c.paper, "claim": c.text, "source": c.source,
                    "link": _link(Path(results_dir), c), "made_by": Path(c.link).parent.name, "compared": c.compared,
                    "metric": c.metric + (f" − {c.b_metric}" if c.b_metric else "")
                    + (f" ({c.quantity})" if c.quantity != "value" else ""),
                    "dataset": c.dataset or "all", "selection": c.selection, "expect": c.expect,
                    "margin": c.margin, "n": e.n, "mean": e.mean, "low": e.low, "high": e.high,
                    "profile": e.profile, "data": e.data, "verdict": e.verdict})
    return pd.DataFrame(out)


def _link(results_dir: Path, c: Claim) -> str:
    """The claim's table relative to ``results_dir``: a run's layout ``<notebook>/<file>``, or the flat
    layout of results/reference/ when only the file itself is there."""
    flat = Path(c.link).name
    return flat if (results_dir / flat).exists() and not (results_dir / c.link).exists() else c.link


def _interval(r) -> str:
    if r["n"] == 0:
        return "—"
    if not np.isfinite(r["low"]):
        return f"{r['mean']:+.2f}"
    return f"{r['mean']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]"


def claims_markdown(table: pd.DataFrame, untested=None) -> str:
    """``CLAIMS.md``: the rule, the counts, one line per claim, then the claims no row can test."""

    untested = UNTESTED if untested is None else untested
    lines = ["# Claims of both papers, tested on this run's rows", "",
             f"{len(table) + len(untested)} claims: {len(table)} tested below "
             f"(paper 1: {int((table['paper'] == 1).sum())}, paper 2: {int((table['paper'] == 2).sum())}), "
             f"{len(untested)} that the rows cannot test (last section).", "",
             f"Verdicts: {verdict_counts(table['verdict'])}.", "",
             "**Rule** (docs/claims.md). Per clip, the difference of the two compared designs / configurations on the "
             "same clip (A − B; B may also be another measure of the same rows, such as the chance level stored per "
             "fragment, or a constant); its mean and a percentile-bootstrap "
             f"{CONFIDENCE:.0%} interval ({N_BOOT} resamples, seed {BOOT_SEED}). **reproduced**: the interval excludes "
             "zero on the paper's side; **contradicted**: it excludes zero on the other side; **inconclusive at this "
             f"n**: it contains zero, or fewer than {MIN_N} clips are paired (a one-clip result can never be "
             "reproduced); **undefined on these clips**: both sides ran but the metric is defined on no clip "
             "(EPS without predicted silence); **not run in this profile**: no rows. A no-difference claim "
             "(paper side `≈ 0 ± m`) is "
             "reproduced when the whole interval lies within ±m, contradicted when it lies entirely outside. "
             "Paper 1's claims use the oracle rule (the authors' protocol); the tables also show the blind rules.", "",
             "| id | claim | paper | source | compared | metric | data set | paper side | mean A − B [95 % CI] | n | "
             "profile | data | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        side = {1: "> 0", -1: "< 0", 0: f"≈ 0 ± {r['margin']:g}"}[r["expect"]]
        lines.append(f"| {r['id']} | {r['claim']} | {r['paper']} | [{r['source']}]({r['link']}) | {r['compared']} | "
                     f"{r['metric']} | {r['dataset']} | {side} | {_interval(r)} | {r['n']} | {r['profile'] or '—'} | "
                     f"{r['data'] or '—'} | {r['verdict']} |")
    lines += deciding_runs(table)
    lines += ["", "## Claims the rows cannot test", "", "| paper | source | claim | why not tested |", "|---|---|---|---|"]
    lines += [f"| {p} | {s} | {t} | {why} |" for p, s, t, why in untested]
    return "\n".join(lines) + "\n"


#: What the paper profile of paper 2 would need (its training cost is not in dap/costs.py).
_PAPER2_SCALE = ("250 test fragments of the real corpus (the embedded stems cannot supply the paper "
                 "profile's 2000 / 500 / 250 split: strict_sizes refuses them); training cost not measured")


def deciding_runs(table: pd.DataFrame) -> list[str]:
    """Markdown lines: for each table or figure with claims inconclusive at this n, the run that would
    decide them (the paper profile), its n, fits and cost from :func:`dap.costs.study_cost`."""
    open_ = table[table["verdict"] == "inconclusive at this n"]
    if open_.empty:
        return []
    lines = ["", "## What would decide the inconclusive claims", "",
             "More clips: the interval of a paired difference narrows about as 1/sqrt(n). The `paper` profile "
             "has the paper's n; its cost below is the number of fits and fit-iterations it runs, and the hours "
             "they would take one fit at a time on the 2-core CPU of dap/costs.py (paper widths, linear in clip "
             "length). No GPU has measured it (benchmarks/gpu_check.py prints that rate on one).", "",
             "| source | claims inconclusive here | n here (largest) | paper profile: n | fits | fit-iterations | "
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
