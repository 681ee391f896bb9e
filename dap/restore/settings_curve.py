"""restore's time/quality curve over the settings a user can choose, read off kept fits
(``benchmarks/bench_restore_settings.py`` makes the rows; docs/stopping.md publishes the table).

One fit per (case, design, widths) runs restore's window fit up to the largest cap with every iterate
scored against the clean clip. Under a smaller cap the fit is the same up to that cap (the learning
rate is constant up to the cap, the initialisation and latent inputs fixed by the seed), so the
discrepancy rule's output under cap ``c`` is the first iterate whose loss is within the floor if it
comes by ``c``, else the iterate at ``c``, or the input itself when its loss is still
>= :data:`~dap.restore.defaults.KEEP_INPUT_RATIO` x the floor (:func:`dap.restore.prior.keeps_input`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dap.priors import DEFAULT_WIDTHS as PAPER_WIDTHS
from dap.restore.defaults import DEFAULT_OVERLAP, DEFAULT_TOLERANCE, DEFAULT_WINDOW, FIT_SR
from dap.restore.prior import keeps_input
from dap.restore.windows import plan_windows

#: The settings compared, ``(design, widths)``, restore's default first (``None`` = the paper's widths
#: (35, 70, 140)); then cheaper ones: narrower priors, and the plain-convolution design.
SETTINGS: tuple[tuple[str, tuple[int, ...] | None], ...] = (
    ("dilated_exp_dense", None),
    ("dilated_exp_dense", (18, 35, 70)),
    ("conv", PAPER_WIDTHS),
    ("dilated_exp_dense", (9, 18, 35)),
)
#: The caps read off every fit (iterations per window).
CAPS: tuple[int, ...] = (250, 500, 1000, 1500)
#: A setting is "within reach of the best" when its mean output SNR is at most this far below it.
MARGIN_DB = 0.5


def setting_label(design: str, widths) -> str:
    """``"<design> <w0>/<w1>/<w2>"``, e.g. ``"dilated_exp_dense 35/70/140"``."""
    return f"{design} {'/'.join(str(w) for w in (widths or PAPER_WIDTHS))}"


def output_under_cap(history: pd.DataFrame, floor: float, cap: int, input_snr_db: float,
                     tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """What the discrepancy rule returns under ``cap``, from a fit's per-iteration ``history``.

    history: one row per iteration from 1 (``iteration, loss, snr``), run at least up to ``cap`` or to
    the floor. floor: the estimated loss floor the fit used. Returns ``iterations`` (run by the fit),
    ``snr_db`` (of the output: the iterate's, or ``input_snr_db`` when the window is kept as input),
    ``reached`` and ``kept_input``. ValueError when the history ends before both the cap and the floor.
    """
    h = history.sort_values("iteration")
    if not np.array_equal(h["iteration"].to_numpy(), np.arange(1, len(h) + 1)):
        raise ValueError("history must hold every iteration from 1 (track_every = 1)")
    within = h[h["iteration"] <= cap]
    hit = within[within["loss"] <= tolerance * floor]
    if len(hit):
        first = hit.iloc[0]
        return {"iterations": int(first["iteration"]), "snr_db": float(first["snr"]), "reached": True,
                "kept_input": False}
    if int(within["iteration"].max()) < cap:
        raise ValueError(f"the fit ended at iteration {int(within['iteration'].max())}, before the cap {cap}, "
                         "without reaching the floor")
    last = within.iloc[-1]
    keep = keeps_input(False, float(last["loss"]) / floor)
    return {"iterations": cap, "snr_db": float(input_snr_db if keep else last["snr"]), "reached": False,
            "kept_input": keep}


def curve_rows(fits: pd.DataFrame, trajectories: pd.DataFrame, caps=CAPS) -> pd.DataFrame:
    """One row per (fit, cap): the rule's output SNR, gain, iterations and seconds per second of audio.

    fits: one row per fit (``fit_id, noise, mix_snr_db, input_snr_db, design, widths, iterations,
    seconds, window_s, floor_est``); trajectories: ``fit_id, iteration, loss, snr``. Seconds of a cap
    are the fit's measured seconds per iteration times the iterations the rule runs under it.
    """
    out = []
    for fit in fits.itertuples(index=False):
        h = trajectories[trajectories["fit_id"] == fit.fit_id]
        per_iteration = fit.seconds / fit.iterations
        for cap in caps:
            r = output_under_cap(h, fit.floor_est, cap, fit.input_snr_db)
            out.append({"kind": "restore", "setting": f"{fit.design} {fit.widths}", "cap": cap,
                        "case": f"{fit.noise} {fit.mix_snr_db:g} dB", "input_snr_db": fit.input_snr_db,
                        "output_snr_db": r["snr_db"], "gain_db": r["snr_db"] - fit.input_snr_db,
                        "iterations": r["iterations"], "reached": r["reached"], "kept_input": r["kept_input"],
                        "s_per_audio_s": per_iteration * r["iterations"] / fit.window_s,
                        "s_per_iteration": per_iteration})
    return pd.DataFrame(out)


def reference_rows(references: pd.DataFrame) -> pd.DataFrame:
    """Rows like :func:`curve_rows`'s for what needs no fit, scored on the same cases (``kind``
    ``"reference"``, cap 0): the noisy input itself and a classical blind denoiser.

    references: ``noise, mix_snr_db, input_snr_db, method, output_snr_db, seconds, window_s``.
    """
    r = references
    return pd.DataFrame({"kind": "reference", "setting": r["method"], "cap": 0,
                         "case": [f"{n} {s:g} dB" for n, s in zip(r["noise"], r["mix_snr_db"])],
                         "input_snr_db": r["input_snr_db"], "output_snr_db": r["output_snr_db"],
                         "gain_db": r["output_snr_db"] - r["input_snr_db"], "iterations": 0, "reached": False,
                         "kept_input": False, "s_per_audio_s": r["seconds"] / r["window_s"], "s_per_iteration": 0.0})


def complete_cases(rows: pd.DataFrame) -> list[str]:
    """The cases every setting of ``rows`` has (an interrupted run leaves the last one partial)."""
    counts = rows.groupby("case")["setting"].nunique()
    return list(counts[counts == rows["setting"].nunique()].index)


def curve_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, cap) over the cases present for every setting: mean output SNR and gain, worst
    gain, mean seconds per second of audio, and how far below the best restore setting it is (whether
    within :data:`MARGIN_DB`). Rows of ``kind`` ``"reference"`` are scored against that best too."""
    r = rows[rows["case"].isin(complete_cases(rows))]
    t = r.groupby(["kind", "setting", "cap"], sort=False).agg(
        n=("case", "nunique"), output_snr_db=("output_snr_db", "mean"), gain_db=("gain_db", "mean"),
        worst_gain_db=("gain_db", "min"), s_per_audio_s=("s_per_audio_s", "mean"),
        kept_input=("kept_input", "sum"), reached=("reached", "sum")).reset_index()
    best = t.loc[t["kind"] == "restore", "output_snr_db"].max()
    t["below_best_db"] = best - t["output_snr_db"]
    t["within_margin"] = t["below_best_db"] <= MARGIN_DB
    return t


def choose_default(table: pd.DataFrame) -> pd.Series:
    """The fastest restore (setting, cap) of ``table`` within :data:`MARGIN_DB` of its best."""
    return table[table["within_margin"] & (table["kind"] == "restore")].sort_values("s_per_audio_s").iloc[0]


def choose(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The default, in two stages, so that a setting measured on fewer cases can still be ruled out:
    every setting on the cases all of them have (``first``); then the settings with a (setting, cap)
    within the margin there, on every case those have (``final``, the references beside them).
    Returns ``(first, final, pick)``, ``pick`` = :func:`choose_default` of ``final``."""
    first = curve_table(rows)
    keep = set(first.loc[first["within_margin"] & (first["kind"] == "restore"), "setting"])
    final = curve_table(rows[rows["setting"].isin(keep) | (rows["kind"] == "reference")])
    return first, final, choose_default(final)


def cost_of(seconds: float, rows: pd.DataFrame) -> tuple[int, float, float, float]:
    """What ``seconds`` of 16-kHz audio cost with one (setting, cap): restore's windows for that length
    (default window and overlap) x each case's seconds per window. rows: that (setting, cap)'s rows of
    :func:`curve_rows`. Returns ``(windows, least, mean, most)`` seconds over the cases."""
    windows = len(plan_windows(int(round(seconds * FIT_SR)), DEFAULT_WINDOW, DEFAULT_OVERLAP))
    per_window = rows["s_per_audio_s"] * DEFAULT_WINDOW / FIT_SR
    return windows, windows * per_window.min(), windows * per_window.mean(), windows * per_window.max()


def curve_markdown(fits: pd.DataFrame, trajectories: pd.DataFrame, references: pd.DataFrame | None = None,
                   header: str = "") -> str:
    """The published table: per (setting, cap) quality and cost beside ``references`` (see
    :func:`reference_rows`), the default chosen from it, and the output SNR per case."""
    rows = curve_rows(fits, trajectories, [c for c in CAPS if c <= int(fits["cap"].min())])
    if references is not None:
        rows = pd.concat([rows, reference_rows(references)], ignore_index=True)
    first, final, pick = choose(rows)
    chosen = rows[(rows["kind"] == "restore") & (rows["setting"] == pick["setting"]) & (rows["cap"] == pick["cap"])
                  & rows["case"].isin(complete_cases(rows[rows["setting"].isin(set(final["setting"]))]))]
    windows, least, mean, most = cost_of(10.0, chosen)
    per_case = rows.pivot_table(index=["setting", "cap"], columns="case", values="output_snr_db", sort=False)

    def shown(t):
        return t.drop(columns="within_margin").round(2).to_markdown(index=False)

    def cases_of(t):
        return ", ".join(sorted(complete_cases(rows[rows["setting"].isin(set(t["setting"]))])))

    lines = [
        "# restore's time/quality curve over the settings a user can choose", "",
        *([header, ""] if header else []),
        "- cases: (noise, input SNR) of one embedded speech clip (notebook 11's), one 1.024-s window each",
        "- output SNR: 10 log10(sum clean^2 / sum (clean - output)^2) of the discrepancy rule's output, dB "
        "(the input itself where restore keeps it); gain = output - input SNR",
        "- seconds per second of audio: the fit's measured seconds per iteration x the iterations the rule runs "
        "under the cap / 1.024 s, for one window (long files: overlapping windows, see the cost of 10 s below)",
        f"- default rule: the fastest restore (setting, cap) whose mean output SNR is within {MARGIN_DB} dB of the "
        "best, in two stages: every setting on the cases all of them have (stage 1); then the settings with a "
        "(setting, cap) within the margin there, on every case those have (stage 2). n is small, so the margin "
        "compares means of these cases, not a tested difference",
        "- kind `reference` (cap 0, no fit): the noisy input itself (the trivial answer) and the classical blind "
        "denoiser, scored the same way on the same cases", "",
        f"Stage 1, every setting; cases: {cases_of(first)}", "", shown(first), "",
        f"Stage 2, the settings within the margin in stage 1; cases: {cases_of(final)}", "", shown(final), "",
        f"**Chosen:** {pick['setting']}, cap {int(pick['cap'])}: mean output SNR {pick['output_snr_db']:.2f} dB "
        f"({pick['below_best_db']:.2f} dB below the best), {pick['s_per_audio_s']:.0f} s per second of audio. "
        f"10 s of audio are {windows} windows: {mean / 60:.0f} min on this machine (cases' range "
        f"{least / 60:.0f}-{most / 60:.0f} min: the stop depends on the input SNR).", "",
        "Output SNR per case (dB):", "", per_case.round(2).reset_index().to_markdown(index=False), "",
    ]
    return "\n".join(lines)
