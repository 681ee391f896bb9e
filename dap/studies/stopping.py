"""Blind stopping across input SNRs: the discrepancy rule against oracle / last / EMA.

Two studies, both on embedded (or real) speech, called by notebook ``11_blind_stopping``:

* :func:`noise_estimate_errors` (no fits, seconds): the error in dB of each blind noise
  estimator of :mod:`dap.noise` against the true noise floor, for white and environmental noise
  at each input SNR;
* :func:`stopping_study` (fits): one fit per clip, noise type and input SNR, every selection rule
  from the same fit: ``oracle`` (best SNR against the clean reference over every iterate computed),
  ``last`` and ``ema`` of the fixed budget ``iterations``, ``discrepancy`` (up to ``max_iterations``).
  :func:`stopping_table` turns its rows into output SNR, gain over the input and iterations per rule,
  and :func:`stopping_claims` tests the claim: the discrepancy output is never worse than its input
  and stays within ``margin_db`` of the oracle.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from dap import metrics
from dap.core.seeds import derive_seed
from dap.core.store import ResultStore
from dap.data import Clip
from dap.engine.grid import run_grid
from dap.noise import NOISE_KINDS, estimate_noise, true_loss_floor
from dap.config.notebook_settings import StoppingSettings
from dap.report.tables import caption, discrepancy_note
from dap.studies.common import (describe_data, fit_description, load_normalised, scale_deviations,
                                study_setup, with_observation)
from dap.studies.denoising import noise_recordings
from dap.tasks import denoise

#: Noise types of the study: white Gaussian, and the environmental recordings of Table 2.
STOPPING_NOISES = ("white", "environmental")
RULES = ("oracle", "last", "ema", "discrepancy")


def corrupt_at_snr(clean: np.ndarray, noise: str, snr_db: float, seed: int, recordings=None) -> tuple[np.ndarray, dict]:
    """``clean`` ``(L,)`` with ``noise`` (``"white"`` or ``"environmental"``) at exactly ``snr_db``.

    White: Gaussian noise scaled to the clip's power. Environmental: a random excerpt of a traffic or
    domestic recording (``recordings``: category -> clips, as :func:`dap.studies.denoising.noise_recordings`
    returns), mixed as in Table 2. Returns ``(noisy (L,), description)``.
    """
    if noise == "white":
        power = float(np.mean(np.asarray(clean, np.float64) ** 2))
        noisy = denoise.add_gaussian_noise(clean, np.sqrt(power / 10 ** (snr_db / 10)), seed=seed)
        extra = {"noise_category": "white"}
    elif noise == "environmental":
        rng = np.random.default_rng(seed)
        category = ("domestic", "traffic")[int(rng.integers(2))]
        recording = recordings[category][int(rng.integers(len(recordings[category])))]
        noisy = denoise.add_environmental_noise(clean, recording.audio, snr_db, seed=seed)
        extra = {"noise_category": category, "noise_id": recording.id}
    else:
        raise ValueError(f"noise must be one of {STOPPING_NOISES}, not {noise!r}")
    extra.update(noise=noise, mix_snr_db=float(snr_db), input_snr=round(metrics.snr(clean, noisy), 3))
    return noisy, extra


def _recordings(source: str, root, noises) -> dict | None:
    return noise_recordings(source, root) if "environmental" in noises else None


# ----------------------------------------------------------------------------- noise estimates
def noise_estimate_errors(p: StoppingSettings, source: str = "embedded", root=None) -> pd.DataFrame:
    """Error of every blind estimator on every (clip, noise, input SNR) of ``p``.

    p: ``datasets, n_clips, seed, snrs, noises, max_samples`` (notebook 11 passes
    ``p.replace(n_clips=p.n_noise_clips)``: this table needs no fit, so it affords more clips). Returns one row per case and
    estimator: ``estimator, noise, category, snr_db, error_db`` (estimated / true noise floor in dB,
    the true floor being ``mean |STFT(noisy - clean)|^2 / 2``) and ``picked`` (what ``auto`` chose).
    """
    recordings = _recordings(source, root, p.noises)
    out = []
    for dataset in p.datasets:
        for clip in load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples):
            for noise in p.noises:
                for snr in p.snrs:
                    noisy, extra = corrupt_at_snr(clip.audio, noise, snr,
                                                  derive_seed(p.seed, "stopping", noise, snr, clip.id), recordings)
                    true = true_loss_floor(noisy, clip.audio)
                    for kind in NOISE_KINDS:
                        est = estimate_noise(noisy, kind)
                        out.append({"dataset": dataset, "clip_id": clip.id, "noise": noise,
                                    "category": extra["noise_category"], "snr_db": snr, "estimator": kind,
                                    "picked": est.kind, "error_db": 10 * np.log10(est.loss_floor / true)})
    return pd.DataFrame(out)


def noise_error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Per estimator, noise category and input SNR: mean and worst (largest |.|) error in dB, and
    for ``auto`` how often it picked the white estimator."""
    def stats(g):
        e = g["error_db"]
        return pd.Series({"n": len(e), "mean_db": e.mean(), "worst_db": e.iloc[int(np.argmax(e.abs().values))],
                          "mean_abs_db": e.abs().mean(), "picked_white": (g["picked"] == "white").mean()})

    table = errors.groupby(["estimator", "category", "snr_db"], sort=False)[["error_db", "picked"]].apply(stats)
    order = {k: i for i, k in enumerate(NOISE_KINDS)}
    return table.reset_index().sort_values(["estimator", "category", "snr_db"], kind="stable",
                                           key=lambda c: c.map(order) if c.name == "estimator" else c).reset_index(drop=True)


def noise_error_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Per estimator and noise family (white / environmental), over every SNR: mean, mean |.| and
    worst error in dB."""
    def stats(e):
        return pd.Series({"n": len(e), "mean_db": e.mean(), "mean_abs_db": e.abs().mean(),
                          "worst_db": e.iloc[int(np.argmax(e.abs().values))]})

    return errors.groupby(["estimator", "noise"])["error_db"].apply(stats).unstack().reset_index()


def noise_error_caption(p: StoppingSettings, source: str) -> str:
    """What produced the noise-estimate error table."""
    return caption("Blind noise estimates: error of the estimated noise floor against the true one (dB)",
                   data=describe_data(source, p.datasets), profile=p.profile, n_clips=p.n_noise_clips,
                   iterations="none (no fit)", selection="not applicable",
                   metrics={"error": "10 log10(estimated / true noise floor); true floor = mean |STFT(noisy - clean)|^2 / 2 "
                                     "(the loss of a perfect fit); positive = overestimate (the rule stops earlier)",
                            "noise": f"white Gaussian and environmental (traffic / domestic recordings) at "
                                     f"{', '.join(f'{s:g}' for s in p.snrs)} dB input SNR",
                            "estimators": "white: 25 % quantile of |Y|^2 over 5.5-7.5 kHz; coloured: minimum "
                                          "statistics per bin; auto: white when the coloured estimate is flat "
                                          "(dap.noise, docs/stopping.md)"},
                   extra=[f"clips of {(p.max_samples or 0) / 16000:.3f} s (the most energetic window), peak-normalised; "
                          "worst_db = the error of largest magnitude; picked_white = how often auto chose the white estimator"])


# ----------------------------------------------------------------------------- fits
def stopping_study(store: ResultStore, p: StoppingSettings, source: str = "embedded", root=None,
                   progress=print) -> pd.DataFrame:
    """Fit every (clip, noise, input SNR, design) of ``p``; return the tidy rows (metric ``SNR``).

    p: ``datasets, n_clips, seed, snrs, noises, designs, iterations`` (the fixed budget of last /
    EMA), ``max_iterations`` (the discrepancy rule's cap), ``tolerance``, ``noise_estimator``,
    ``prior_opts``, ``max_samples`` and the fit settings of the other denoising studies. One grid
    per (noise, input SNR), set up as every study (:func:`dap.studies.common.study_setup`).
    """
    recordings = _recordings(source, root, p.noises)
    rule = {"max_iterations": p.max_iterations, "tolerance": p.tolerance, "noise_estimator": p.noise_estimator}
    all_rows = []
    for dataset in p.datasets:
        clips = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)
        for noise in p.noises:
            for snr in p.snrs:
                noisy = [with_observation(c, *corrupt_at_snr(c.audio, noise, snr,
                                                             derive_seed(p.seed, "stopping", noise, snr, c.id),
                                                             recordings)) for c in clips]
                setup = study_setup(p, f"stopping-{noise}", {**rule, "noise": noise, "snr_db": snr},
                                    max_iterations=p.max_iterations, discrepancy_tolerance=p.tolerance)
                run_fit = partial(_fit_clip, cfg=setup.config, seed=p.seed, estimator=p.noise_estimator,
                                  prior_opts=setup.prior_opts)
                all_rows.append(run_grid(store, setup.grid, noisy, list(p.designs), run_fit, _evaluate,
                                         selections=RULES, progress=progress, **setup.parallel()))
    return pd.concat(all_rows, ignore_index=True)


def _fit_clip(clip: Clip, design: str, cfg, seed: int, estimator: str, prior_opts):
    """One fit of the study on a clip from :func:`~dap.studies.common.with_observation` (module
    level, so worker processes can run it)."""
    corrupted, extra = clip.meta["observation"], clip.meta["observation_extra"]
    result = denoise.restore(corrupted, design, cfg, seed=derive_seed(seed, clip.dataset, clip.id),
                             clean=clip.audio, prior_opts=prior_opts, noise=estimator)
    result.extra.update(extra)
    return result


def _evaluate(clip: Clip, est: np.ndarray) -> dict[str, float]:
    return {"SNR": metrics.snr(clip.audio, np.asarray(est).reshape(-1))}


# ----------------------------------------------------------------------------- tables, claims, figure
def stopping_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (design, noise, input SNR, rule): mean output SNR, mean and worst gain over the input
    (dB), mean iterations of the output (the rule's cost; oracle: where its best iterate was),
    and for ``discrepancy`` how often the floor was reached and the noise estimate's mean error."""
    ok = rows[(rows["status"] == "ok") & (rows["metric"] == "SNR")].copy()
    if ok.empty:
        return pd.DataFrame()
    ok["gain"] = ok["value"] - ok["input_snr"]
    ok["best_iteration"] = pd.to_numeric(ok["best_iteration"], errors="coerce")
    out = []
    for (design, noise, snr, rule), g in ok.groupby(["design", "noise", "mix_snr_db", "selection"], sort=False):
        line = {"design": design, "noise": noise, "input_snr_db": snr, "rule": rule, "n": len(g),
                "output_snr_db": g["value"].mean(), "gain_db": g["gain"].mean(), "worst_gain_db": g["gain"].min(),
                "iterations": g["best_iteration"].mean()}
        if rule == "discrepancy":
            line["reached"] = g["discrepancy_reached"].astype(str).str.lower().eq("true").mean()
            line["noise_error_db"] = pd.to_numeric(g["noise_floor_error_db"], errors="coerce").mean()
        out.append(line)
    table = pd.DataFrame(out)
    order = {r: i for i, r in enumerate(RULES)}
    return table.sort_values(["design", "noise", "input_snr_db", "rule"],
                             key=lambda s: s.map(order) if s.name == "rule" else s, kind="stable").reset_index(drop=True)


def stopping_claims(rows: pd.DataFrame, margin_db: float) -> dict:
    """The claim, fit by fit: the discrepancy output is never worse than its input (gain >= 0), and
    is within ``margin_db`` of the oracle of the same fit. Returns counts, the worst cases and booleans."""
    ok = rows[(rows["status"] == "ok") & (rows["metric"] == "SNR")]
    wide = ok.pivot_table(index="fit_id", columns="selection", values="value", aggfunc="first")
    inputs = ok.groupby("fit_id")["input_snr"].first()
    if "discrepancy" not in wide or wide.empty:
        return {"n_fits": 0}
    gain = wide["discrepancy"] - inputs.loc[wide.index]
    gap = wide["oracle"] - wide["discrepancy"] if "oracle" in wide else pd.Series(np.nan, index=wide.index)
    return {"n_fits": int(len(wide)), "margin_db": float(margin_db),
            "never_worse_than_input": bool((gain >= 0).all()), "n_worse_than_input": int((gain < 0).sum()),
            "worst_gain_db": float(gain.min()), "within_margin_of_oracle": bool((gap <= margin_db).all()),
            "n_outside_margin": int((gap > margin_db).sum()), "largest_gap_to_oracle_db": float(gap.max())}


def stopping_figure(table: pd.DataFrame):
    """Output SNR (top) and iterations of the output (bottom) against the input SNR, one column per
    noise type, one line per rule (first design of the table)."""
    import matplotlib.pyplot as plt  # only where a figure is drawn: slow to import, absent from lean installs

    design = table["design"].iloc[0]
    t = table[table["design"] == design]
    noises = list(dict.fromkeys(t["noise"]))
    fig, axes = plt.subplots(2, len(noises), figsize=(5 * len(noises), 6.2), squeeze=False, sharex=True)
    styles = {"oracle": ("k", "--"), "last": ("tab:blue", "-"), "ema": ("tab:green", "-"), "discrepancy": ("tab:red", "-")}
    for j, noise in enumerate(noises):
        g = t[t["noise"] == noise]
        lo, hi = g["input_snr_db"].min(), g["input_snr_db"].max()
        axes[0, j].plot([lo, hi], [lo, hi], color="0.6", lw=1, label="output = input")
        for rule in RULES:
            r = g[g["rule"] == rule]
            if r.empty:
                continue
            colour, ls = styles[rule]
            axes[0, j].plot(r["input_snr_db"], r["output_snr_db"], marker="o", color=colour, ls=ls, label=rule)
            axes[1, j].plot(r["input_snr_db"], r["iterations"], marker="o", color=colour, ls=ls, label=rule)
        axes[0, j].set_title(f"{noise} noise", fontsize=9)
        axes[0, j].set_ylabel("output SNR (dB)")
        axes[1, j].set_ylabel("iteration of the output")
        axes[1, j].set_xlabel("input SNR (dB)")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    return fig


def stopping_caption(p: StoppingSettings, source: str, rows: pd.DataFrame, claims: dict) -> str:
    """What produced the study's table and figure."""
    deviations = scale_deviations(p)
    if p.iterations < 2000:
        deviations = [d for d in deviations if not d.startswith("reduced scale")]
        deviations.append(f"not a table of the paper; {p.n_clips} clip(s) per data set, a fixed budget of "
                          f"{p.iterations} iterations for last / EMA, the discrepancy rule capped at "
                          f"{p.max_iterations}")
    claim = (f"claim (discrepancy never worse than its input, within {claims.get('margin_db')} dB of the oracle): "
             f"worse than the input in {claims.get('n_worse_than_input')} of {claims.get('n_fits')} fits "
             f"(worst gain {claims.get('worst_gain_db', float('nan')):+.2f} dB); outside the margin in "
             f"{claims.get('n_outside_margin')} (largest gap {claims.get('largest_gap_to_oracle_db', float('nan')):.2f} dB)")
    return caption("Blind stopping across input SNRs: output SNR of each selection rule, and its cost in iterations",
                   data=describe_data(source, p.datasets), profile=p.profile, n_clips=p.n_clips,
                   iterations=f"last / EMA {p.iterations}; discrepancy up to {p.max_iterations}; oracle: best "
                              f"of every iterate computed",
                   selection="oracle, last, EMA, discrepancy (all from the same fit)",
                   metrics={"SNR": "10 log10(sum clean^2 / sum (clean - output)^2), dB; gain = output - input SNR",
                            "noise": f"white Gaussian and environmental (traffic / domestic) at "
                                     f"{', '.join(f'{s:g}' for s in p.snrs)} dB input SNR"},
                   deviations=deviations,
                   extra=[discrepancy_note(rows), claim, fit_description(p, rows),
                          f"designs: {', '.join(p.designs)}; noise estimator: {p.noise_estimator}"])


def stopping_checks(table: pd.DataFrame, claims: dict, errors: pd.DataFrame | None = None) -> dict:
    """Named numbers the notebook publishes for its tests."""
    out = {f"claims/{k}": v for k, v in claims.items()}
    for r in table.itertuples():
        out[f"{r.rule}/{r.design}/{r.noise}/{r.input_snr_db:g}/output_snr"] = float(r.output_snr_db)
        out[f"{r.rule}/{r.design}/{r.noise}/{r.input_snr_db:g}/iterations"] = float(r.iterations)
    if errors is not None and len(errors):
        for (kind, noise), g in errors.groupby(["estimator", "noise"]):
            out[f"noise_error/{kind}/{noise}/mean_abs_db"] = float(g["error_db"].abs().mean())
    out["n_rules"] = int(table["rule"].nunique()) if len(table) else 0
    return out
