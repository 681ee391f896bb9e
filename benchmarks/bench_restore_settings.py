"""`python -m dap restore`'s time/quality curve over the settings a user can choose (design, widths,
cap), on notebook 11's embedded cases (docs/stopping.md, "Which settings restore uses by default").

Each (case, setting) is one fit of one 1.024-s window (restore's window) with restore's own
settings (:meth:`dap.restore.WindowPrior.fit_config`: the discrepancy rule, a constant learning
rate up to the cap, stop at the floor) run up to the largest cap, with the clean clip scoring every
iterate. A smaller cap changes nothing before it, so the rule's output under every cap in ``--caps``
is read off the same fit (:mod:`dap.restore.settings_curve`). Cases: notebook 11's (its speech clip,
white and environmental noise at its quick SNRs 0 / 10 / 20 dB, white also at 15 dB from its paper
profile, the same seeds), at restore's
window length instead of quick's 0.512 s.

    .venv/bin/python benchmarks/bench_restore_settings.py --out DIR            # fit (hours), then derive
    .venv/bin/python benchmarks/bench_restore_settings.py --derive DIR         # tables from kept rows

Rows are appended after every fit (``fits.csv``, ``trajectories.csv.gz``), so an interrupted run keeps
what it computed and a second run with the same ``--out`` skips the fits it finds. ``references.csv``
scores what needs no fit on the same cases (the noisy input, a classical blind denoiser). ``--derive``
writes ``curve.md`` beside them. Timings are this machine's (the header names it); a script, not a
test.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dap import metrics
from dap.baselines import spectral_gating, timed
from dap.config.profiles import resolve
from dap.core.files import atomic_write_text
from dap.core.provenance import git_commit, machine_description
from dap.core.seeds import derive_seed
from dap.noise import estimate_noise
from dap.restore import WindowPrior
from dap.restore.defaults import DEFAULT_DESIGN, DEFAULT_WIDTHS, DEFAULT_WINDOW, FIT_SR
from dap.restore.estimate import predicted_stop
from dap.restore.settings_curve import CAPS, SETTINGS, curve_markdown, setting_label
from dap.studies.common import load_normalised
from dap.studies.denoising import noise_recordings
from dap.studies.stopping import corrupt_at_snr
from dap.tasks import denoise

NOTEBOOK = "11_blind_stopping"
CASE_ORDER = (("white", 10.0), ("environmental", 10.0), ("white", 0.0), ("white", 20.0), ("white", 15.0),
              ("environmental", 0.0), ("environmental", 20.0))


def cases():
    """Notebook 11's cases (:data:`CASE_ORDER`) at restore's window: yields ``(case dict, clean (L,), noisy (L,))``."""
    p = resolve(NOTEBOOK, "quick")
    recordings = noise_recordings("embedded")
    clip = load_normalised(p.datasets[0], 1, p.seed, "embedded", None, DEFAULT_WINDOW)[0]
    for noise, snr in CASE_ORDER:
        noisy, extra = corrupt_at_snr(clip.audio, noise, snr, derive_seed(p.seed, "stopping", noise, snr, clip.id),
                                      recordings)
        case = {"clip_id": clip.id, "noise": noise, "noise_category": extra["noise_category"], "mix_snr_db": snr,
                "input_snr_db": extra["input_snr"], "fit_seed": derive_seed(p.seed, clip.dataset, clip.id)}
        yield case, clip.audio, noisy


def run_fit(case: dict, clean, noisy, design: str, widths, cap: int) -> tuple[dict, pd.DataFrame]:
    """One restore window fit up to ``cap``, every iterate scored against ``clean``."""
    prior = WindowPrior(design=design, widths=widths, iterations=cap)
    estimate = estimate_noise(noisy, prior.noise)
    start = time.perf_counter()
    res = denoise.restore(noisy, design, prior.fit_config("denoise"), seed=case["fit_seed"], clean=clean,
                          prior_opts=prior.prior_opts(), noise=estimate)
    seconds = time.perf_counter() - start
    if not res.ok:
        raise RuntimeError(f"{design} {widths}: {res.error}")
    h = res.history[["iteration", "loss", "snr"]].copy()
    row = {**case, "design": design, "widths": setting_label(design, widths).split(" ", 1)[1], "cap": cap,
           "iterations": res.iterations, "seconds": round(seconds, 2), "window_s": len(noisy) / FIT_SR,
           "floor_est": estimate.loss_floor, "floor_true": res.extra["noise_floor_true"],
           "reached": bool(res.extra["discrepancy_reached"]), "stop_snr_db": metrics.snr(clean, res.outputs["discrepancy"][0]),
           "precision": res.precision}
    return row, h


def score_references() -> pd.DataFrame:
    """Per case, what needs no fit: the noisy input itself and the classical blind denoiser
    (:func:`dap.baselines.spectral_gating`), with its seconds."""
    out = []
    for case, clean, noisy in cases():
        estimate, seconds = timed(spectral_gating, noisy)
        for method, output, secs in (("noisy input", noisy, 0.0), ("spectral gating (classical, blind)", estimate, seconds)):
            out.append({**case, "method": method, "output_snr_db": metrics.snr(clean, output), "seconds": round(secs, 3),
                        "window_s": len(noisy) / FIT_SR})
    return pd.DataFrame(out)


def stop_estimates(fits: pd.DataFrame, cap: int) -> str:
    """restore's predicted stop (:func:`dap.restore.estimate.predicted_stop`, from the blind input SNR of
    the noisy window) against the iterations the default prior's rule took, per case: the time
    estimate's error at SNRs other than the two it was fitted to (its time is iterations x a probe)."""
    blind = {f"{c['noise']}-{c['mix_snr_db']:g}dB": estimate_noise(noisy, "auto").input_snr_db
             for c, _, noisy in cases()}
    default = fits[fits["design"] + " " + fits["widths"] == setting_label(DEFAULT_DESIGN, DEFAULT_WIDTHS)]
    lines = ["", "restore's predicted stop (default prior) against the rule's, per case:", "",
             "| case | input SNR (dB) | blind estimate (dB) | predicted iterations | iterations taken | taken / predicted |",
             "|---|---|---|---|---|---|"]
    for f in default.itertuples(index=False):
        key = f.fit_id.split("|")[0]
        pred = predicted_stop(blind[key], cap)
        lines.append(f"| {f.noise} {f.mix_snr_db:g} dB | {f.input_snr_db:.2f} | {blind[key]:.2f} | {pred:.0f} | "
                     f"{f.iterations} | {f.iterations / pred:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder of the rows (created; fits already there are skipped)")
    ap.add_argument("--derive", metavar="DIR", help="only derive the tables from DIR's kept rows")
    ap.add_argument("--cap", type=int, default=max(CAPS), help=f"the largest cap, run by every fit (default {max(CAPS)})")
    args = ap.parse_args(argv)
    if bool(args.out) == bool(args.derive):
        ap.error("give either --out DIR (fit, then derive) or --derive DIR (derive from kept rows)")
    if args.derive:
        folder = Path(args.derive)
        missing = [n for n in ("fits.csv", "trajectories.csv.gz", "references.csv") if not (folder / n).exists()]
        if missing:
            ap.error(f"{folder} lacks {', '.join(missing)}: run with --out {folder} first")
        fits = pd.read_csv(folder / "fits.csv")
        starts = (folder / "machine.txt").read_text().strip().splitlines() if (folder / "machine.txt").exists() else []
        text = curve_markdown(fits, pd.read_csv(folder / "trajectories.csv.gz"), pd.read_csv(folder / "references.csv"),
                              header="\n".join(f"- fits: {line}" for line in starts))
        text += stop_estimates(fits, args.cap)
        atomic_write_text(folder / "curve.md", text)
        print(text)
        return 0
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    fits_path, traj_path = folder / "fits.csv", folder / "trajectories.csv.gz"
    done = pd.read_csv(fits_path) if fits_path.exists() else pd.DataFrame()
    header = (f"commit {git_commit()}; {machine_description()}; started "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    with open(folder / "machine.txt", "a") as log:  # one line per start: rows may span several
        log.write(header + "\n")
    print(header, flush=True)
    if not (folder / "references.csv").exists():
        score_references().to_csv(folder / "references.csv", index=False)
    # restore's default over every case first, then the others: stopped early, the run still decides
    # between the default's caps, and the two-stage choice (settings_curve.choose) uses what it has
    all_cases = list(cases())
    for design, widths in SETTINGS:
        for case, clean, noisy in all_cases:
            label = setting_label(design, widths)
            fit_id = f"{case['noise']}-{case['mix_snr_db']:g}dB|{label}"
            if len(done) and fit_id in set(done["fit_id"]):
                continue
            row, h = run_fit(case, clean, noisy, design, widths, args.cap)
            row = {"fit_id": fit_id, **row}
            h.insert(0, "fit_id", fit_id)
            pd.DataFrame([row]).to_csv(fits_path, mode="a", header=not fits_path.exists(), index=False)
            kept = [pd.read_csv(traj_path)] if traj_path.exists() else []
            pd.concat(kept + [h]).to_csv(traj_path, index=False)
            print(f"{fit_id}: {row['iterations']} iterations, {row['seconds']:.0f} s, "
                  f"stop SNR {row['stop_snr_db']:.2f} dB (input {row['input_snr_db']:.2f})", flush=True)
    return main(["--derive", str(folder)])


if __name__ == "__main__":
    sys.exit(main())
