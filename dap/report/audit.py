"""The reviewer's "verify in an hour": re-fit a random sample of the reference's fits and compare each
with its committed rows (``./run_all.sh --audit MINUTES``; docs/reference.md).

The sample is stratified over the notebooks that fit priors (round-robin over them, random within
each, seeded), and holds as many fits as this machine can finish in the time given: each fit's cost
is its measured wall time in the reference (the rows' ``seconds``) times ``speed_ratio`` (this
machine's seconds per reference-machine second). The fits run through the notebooks' own fit plans
(:func:`dap.studies.plans.run_plans`, no papermill) into a fresh folder, restricted to the sample
(:mod:`dap.engine.audit_selection`). Each re-fitted value is then matched to the reference's on (data
set, clip, design, selection rule, metric): fits of the same code and precision class should agree
exactly (the seeds fix everything); across precision classes the per-metric tolerance of
``python -m dap compare`` applies (:func:`dap.claims.tolerances.tolerance`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dap.claims.tolerances import tolerance
from dap.claims.table import load_rows
from dap.core.errors import DapError
from dap.engine.audit_selection import AUDIT_ENV
from dap.studies.plans import FIT_PLANS

#: What identifies a fit across machines (its fit id also covers the precision class).
FIT_KEY = ["dataset", "clip_id", "design"]
VALUE_KEY = FIT_KEY + ["selection", "metric"]
#: Row columns that tell apart fits of one FIT_KEY (the stopping study's task and SNR), where present.
FIT_VARIANTS = ["task", "mix_snr_db"]


class AuditError(DapError):
    """An audit that cannot run as asked (no fits in the reference, no time for one fit)."""


def reference_fits(reference: str | Path) -> pd.DataFrame:
    """One line per fit of the reference's notebooks that fit priors: notebook, profile, the
    :data:`FIT_KEY`, its fit id and measured seconds."""
    frames = []
    for notebook in FIT_PLANS:
        rows = load_rows(reference, notebook, split_sources=False)  # a fit's data set as its grid names it
        if rows.empty or "code" not in rows:
            continue
        # the classical baselines' rows (selection "none") are read beside the fits; they are not fits
        rows = rows[rows["selection"] != "none"]
        fits = rows[rows["status"] == "ok"].groupby("fit_id").agg(
            profile=("profile", "first"), dataset=("dataset", "first"), clip_id=("clip_id", "first"),
            design=("design", "first"), seconds=("seconds", "max")).reset_index()
        # a sample names fits by FIT_KEY, which runs every fit of that key (the stopping study fits one
        # clip at several noises and SNRs): one line per key, costing all of them
        fits = fits.groupby(["profile"] + FIT_KEY).agg(fit_id=("fit_id", "first"), fits=("fit_id", "size"),
                                                       seconds=("seconds", "sum")).reset_index()
        frames.append(fits.assign(notebook=notebook))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def audit_sample(fits: pd.DataFrame, minutes: float, speed_ratio: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A sample of ``fits`` (:func:`reference_fits`) that should take at most ``minutes`` here.

    Args:
        fits: the reference's fits.
        minutes: the time budget on this machine.
        speed_ratio: seconds here per second of the reference machine (1: the same machine class).
        seed: the sample's seed (the same seed, fits and budget give the same sample).

    Returns:
        The sampled fits with a ``predicted_s`` column, in the order they are taken.
    """
    if fits.empty:
        raise AuditError("the reference holds no fit rows of the current code (rows/<notebook>/rows.csv.gz)")
    rng = np.random.default_rng(seed)
    queues = {nb: list(rng.permutation(block.index)) for nb, block in fits.groupby("notebook")}
    budget, taken, spent = minutes * 60.0, [], 0.0
    while any(queues.values()):
        for nb in sorted(queues):
            while queues[nb]:
                i = queues[nb].pop(0)
                cost = float(fits.loc[i, "seconds"]) * speed_ratio
                if spent + cost <= budget:
                    taken.append(i)
                    spent += cost
                    break  # next notebook: stratified
    if not taken:
        cheapest = float(fits["seconds"].min()) * speed_ratio / 60
        raise AuditError(f"{minutes:g} min is not enough for one fit here (the cheapest takes ~{cheapest:.1f} min)")
    sample = fits.loc[taken].copy()
    sample["predicted_s"] = sample["seconds"] * speed_ratio
    return sample.reset_index(drop=True)


def run_audit(sample: pd.DataFrame, out: str | Path, progress=print) -> None:
    """Re-fit the ``sample`` (:func:`audit_sample`) into the results folder ``out``."""
    from dap.studies.plans import run_plans  # the studies: only when an audit runs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    before = {k: os.environ.get(k) for k in (AUDIT_ENV, "DAP_RESULTS")}
    try:
        os.environ["DAP_RESULTS"] = str(out)
        for (notebook, profile), block in sample.groupby(["notebook", "profile"], sort=True):
            chosen = out / f"audit_{notebook}.json"
            chosen.write_text(json.dumps(block[FIT_KEY].values.tolist()))
            os.environ[AUDIT_ENV] = str(chosen)
            progress(f"audit: {len(block)} fit(s) of {notebook} ({profile})")
            run_plans([notebook], profile, {}, progress=progress)
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def audit_table(sample: pd.DataFrame, reference: str | Path, out: str | Path) -> pd.DataFrame:
    """Per sampled fit: values compared, identical or not, the largest difference, within tolerance.

    Args:
        sample: the audited fits (:func:`audit_sample`).
        reference: the reference folder.
        out: the folder the audit's fits were written to (:func:`run_audit`).

    Returns:
        One row per fit: notebook, :data:`FIT_KEY`, ``values``, ``identical``, ``largest_difference``,
        ``within_tolerance`` (``values`` 0: the fit produced no comparable row).
    """
    lines = []
    for notebook, block in sample.groupby("notebook", sort=True):
        ref, new = (_ok(load_rows(folder, notebook, split_sources=False)) for folder in (reference, out))
        ref = ref[ref["profile"].isin(block["profile"])]
        key = VALUE_KEY + [c for c in FIT_VARIANTS if c in ref and c in new]
        both = ref.merge(new, on=key, suffixes=("_ref", "_new"))  # empty when the audit made no rows
        for _, fit in block.iterrows():
            mine = both[(both["dataset"] == fit["dataset"]) & (both["clip_id"] == fit["clip_id"])
                        & (both["design"] == fit["design"])]
            diff = (mine["value_new"] - mine["value_ref"]).abs()
            tol = mine["metric"].map(tolerance)
            lines.append({"notebook": notebook, **{k: fit[k] for k in FIT_KEY}, "values": len(mine),
                          "identical": bool(len(mine)) and bool((diff == 0).all()),
                          "largest_difference": float(diff.max()) if len(mine) else float("nan"),
                          "within_tolerance": bool(len(mine)) and bool((diff <= tol).all())})
    return pd.DataFrame(lines)


def audit_summary(table: pd.DataFrame, minutes_used: float) -> str:
    """One line: how many fits were re-fitted, identical, within tolerance, in how many minutes."""
    n = len(table)
    return (f"audit: {n} fit(s) re-fitted in {minutes_used:.1f} min; {int(table['identical'].sum())} identical, "
            f"{int(table['within_tolerance'].sum())} within tolerance, "
            f"{int((~table['within_tolerance']).sum())} not (largest difference "
            f"{table['largest_difference'].max():.3g})")


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame(columns=VALUE_KEY + ["value", "profile"])
    rows = rows[(rows["status"] == "ok") & np.isfinite(rows["value"].astype(float))]
    return rows[VALUE_KEY + [c for c in FIT_VARIANTS if c in rows] + ["value", "profile"]]


def speed_ratio(reprobe: bool = False) -> float:
    """Seconds here per second of the reference machine: the probe's fit (:func:`dap.config.plan.ratio_spec`)
    timed here against its cost in :mod:`dap.config.costs`, in the precision paper 1's fits resolve to here."""
    import torch

    from dap.config.plan import ratio_spec, reference_seconds
    from dap.core.device import resolve_precision
    from dap.tasks.probe import measure

    device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = ratio_spec(resolve_precision("auto", device))
    return measure([spec], reprobe=reprobe, device=device)(spec)[0] / reference_seconds("auto")


def audit(reference: str | Path, minutes: float, out: str | Path, seed: int = 0, reprobe: bool = False,
          show=print) -> int:
    """``./run_all.sh --audit MINUTES``: sample, re-fit and compare; print the table and the summary.

    Returns:
        The exit status: 0 when every audited fit is within tolerance, 1 otherwise.
    """
    import time

    ratio = speed_ratio(reprobe)
    sample = audit_sample(reference_fits(reference), minutes, ratio, seed)
    show(f"audit: {len(sample)} fit(s) of {sample['notebook'].nunique()} notebook(s), predicted "
         f"{sample['predicted_s'].sum() / 60:.1f} min here (speed ratio {ratio:.2f} to the reference machine)")
    start = time.time()
    run_audit(sample, out, progress=show)
    table = audit_table(sample, reference, out)
    show(table.to_markdown(index=False))
    show(audit_summary(table, (time.time() - start) / 60))
    return 0 if table["within_tolerance"].all() else 1
