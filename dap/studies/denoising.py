"""Denoising studies: Tables 1-2 and Figure 1 of paper 1."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from dap import metrics
from dap.report import paper
from dap.core.errors import DatasetError
from dap.core.seeds import derive_seed
from dap.core.store import ResultStore
from dap.data import Clip, load_clips
from dap.engine.grid import Grid, load_history, load_output, run_grid
from dap.config.notebook_settings import DenoisingSettings, GaussianDenoisingSettings
from dap.report.tables import caption, discrepancy_note
from dap.studies.common import (BASELINE_FILE, COMMON_DEVIATIONS, baseline_note, describe_data, fit_description,
                                load_normalised, registered_baselines, run_baselines, scale_deviations, study_setup,
                                with_observation)
from dap.tasks import denoise


#: Metrics of Tables 1-2 per data set (PESQ is a speech measure: the paper gives only PSNR for piano).
DENOISING_METRICS = {"speech": ("PESQ", "PSNR", "SNR"), "digits": ("PESQ", "PSNR", "SNR"), "piano": ("PSNR", "SNR")}
#: The discrepancy rule of Tables 1-2 and Figures 1-2: the engine's default tolerance, the auto noise
#: estimator, no extension past the table's budget (a fit that has not reached the floor by then
#: gives its last iterate, counted in the caption).
DISCREPANCY_SETTINGS = {"tolerance": 1.0, "noise_estimator": "auto", "max_iterations": None}


def denoising_study(store: ResultStore, p: DenoisingSettings, noise: str, source: str = "embedded", root=None,
                    progress=print):
    """Tables 1 (``noise="gaussian"``) and 2 (``noise="environmental"``); Figure 1 uses it too.

    p: the settings of the notebook: ``datasets, n_clips, designs, seed, sigma`` (Gaussian) or
    ``snr_low, snr_high`` (environmental) and the fit settings (``prior_opts`` too, as every
    study: :func:`dap.studies.common.study_setup`). Every design sees the same noisy clip (the
    noise is drawn once per clip from the seed). Returns the rows of this grid.
    """
    noises = noise_recordings(source, root) if _check_noise(noise) == "environmental" else None
    # the discrepancy rule's settings change its rows, so they are part of every fit id
    setup = study_setup(p, f"denoise-{noise}", {"noise": noise, "discrepancy": DISCREPANCY_SETTINGS,
                                                **_noise_settings(p, noise)})
    all_rows = []
    for dataset in p.datasets:
        # each clip carries its own noisy observation: a fit sent to a worker carries one clip, not the data set
        clips = [with_observation(c, *noisy_observation(c, noise, p, noises))
                 for c in load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)]
        run_fit = partial(_restore_clip, cfg=setup.config, seed=p.seed, mismatched_istft=p.mismatched_istft,
                          prior_opts=setup.prior_opts)
        all_rows.append(run_grid(store, setup.grid, clips, list(p.designs), run_fit, _evaluator(dataset, p),
                                 progress=progress, **setup.parallel()))
    return pd.concat(all_rows, ignore_index=True)


def _check_noise(noise: str) -> str:
    if noise not in ("gaussian", "environmental"):
        raise ValueError(f"noise must be 'gaussian' or 'environmental', not {noise!r}")
    return noise


def _noise_settings(p: DenoisingSettings, noise: str) -> dict:
    """What describes the noise of Table 1 (``sigma``) or Table 2 (``snr_db``): part of every id."""
    return {"sigma": p.sigma} if noise == "gaussian" else {"snr_db": (p.snr_low, p.snr_high)}


def _evaluator(dataset: str, p: DenoisingSettings):
    """``evaluate(clip, estimate) -> {metric: value}`` of Tables 1-2 for ``dataset`` (fits and
    baselines); picklable, so that worker processes score their own fits."""
    return partial(_evaluate_clip, wanted=DENOISING_METRICS.get(dataset, ("PSNR", "SNR")), pesq_mode=p.pesq_mode)


def _evaluate_clip(clip: Clip, est: np.ndarray, wanted: tuple[str, ...], pesq_mode: str) -> dict[str, float]:
    values = denoise.evaluate(clip.audio, est, pesq_mode=pesq_mode)
    return {k: v for k, v in values.items() if k in wanted}


def denoising_baselines(store: ResultStore, p: DenoisingSettings, noise: str, source: str = "embedded", root=None,
                        progress=print) -> pd.DataFrame:
    """The trivial answer (``noisy-input``) and the classical baselines of Tables 1-2
    (:mod:`dap.baselines`: ``wiener-oracle`` with the true noise's spectrum, blind ``noisereduce``) on
    the same noisy clips as :func:`denoising_study`, scored by the same metrics; rows go to
    ``baselines.csv`` beside ``store``'s rows. Returns them."""
    noises = noise_recordings(source, root) if _check_noise(noise) == "environmental" else None
    settings = {"noise": noise, "max_samples": p.max_samples, **_noise_settings(p, noise)}
    grid = Grid(task=f"denoise-{noise}", settings=settings, profile=p.profile, seed=p.seed)
    out = ResultStore(store.folder, BASELINE_FILE)
    all_rows = []
    for dataset in p.datasets:
        clips = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)
        noisy = {c.id: noisy_observation(c, noise, p, noises)[0] for c in clips}
        methods = registered_baselines("denoise", lambda c: (noisy[c.id], c.audio, {}))
        all_rows.append(run_baselines(out, grid, clips, methods, _evaluator(dataset, p), progress=progress))
    return pd.concat(all_rows, ignore_index=True)


def _restore_clip(clip: Clip, design: str, cfg, seed: int, mismatched_istft: bool, prior_opts: dict | None = None):
    """One denoising fit of a clip from :func:`~dap.studies.common.with_observation` (module level, so worker
    processes can run it)."""
    corrupted, extra = clip.meta["observation"], clip.meta["observation_extra"]
    result = denoise.restore(corrupted, design, cfg, seed=derive_seed(seed, clip.dataset, clip.id),
                             clean=clip.audio, mismatched_istft=mismatched_istft, prior_opts=prior_opts,
                             noise=DISCREPANCY_SETTINGS["noise_estimator"])
    result.extra.update(extra)
    return result


def noise_recordings(source: str, root=None) -> dict[str, list[Clip]]:
    """The noise recordings of Table 2 by category (``traffic``, ``domestic``, ...); DatasetError
    when either of the two is missing. The stopping study mixes the same recordings."""
    clips = load_clips("noise", source=source, root=root)
    by_cat: dict[str, list[Clip]] = {}
    for c in clips:
        by_cat.setdefault(c.meta.get("category", "unknown"), []).append(c)
    missing = {"traffic", "domestic"} - set(by_cat)
    if missing:
        raise DatasetError(f"the {source} noise set has no {sorted(missing)} recordings (found {sorted(by_cat)})")
    return by_cat


def noisy_observation(clip: Clip, noise: str, p: DenoisingSettings, noises) -> tuple[np.ndarray, dict]:
    """The noisy observation of ``clip`` and what describes it (stored in the rows)."""
    s = derive_seed(p.seed, "noise", clip.dataset, clip.id)
    if noise == "gaussian":
        noisy = denoise.add_gaussian_noise(clip.audio, p.sigma, seed=s)
        extra = {}
    else:
        rng = np.random.default_rng(s)
        category = ("domestic", "traffic")[int(rng.integers(2))]
        recording = noises[category][int(rng.integers(len(noises[category])))]
        snr_db = denoise.draw_snr_db(s, p.snr_low, p.snr_high)
        noisy = denoise.add_environmental_noise(clip.audio, recording.audio, snr_db, seed=s)
        extra = {"noise_category": category, "noise_id": recording.id, "mix_snr_db": round(snr_db, 3)}
    extra["input_snr"] = round(metrics.snr(clip.audio, noisy), 3)
    return noisy, extra


def denoising_caption(p: DenoisingSettings, table: str, source: str, rows, baselines=None) -> str:
    """The caption of Table 1 or 2 (see :func:`dap.report.tables.caption`); ``baselines``: the rows of
    :func:`denoising_baselines` (their definition and cost go into the caption)."""
    noise = (f"additive Gaussian noise, sigma {p.sigma}" if table == "table1" else
             f"environmental noise (traffic / domestic) at {p.snr_low}-{p.snr_high} dB SNR")
    deviations = list(COMMON_DEVIATIONS) + [
        "PSNR is not defined by the authors. The paper's PSNR values (7-12 dB) are in the range of a "
        "waveform SNR, while a peak-based PSNR of the sigma-0.1 noisy input alone is ~20 dB; so the "
        "paper's column is likely closer to our SNR, which is printed below each table for comparison"]
    if p.pesq_mode == "wb":
        deviations.append("PESQ mode is not stated in the paper; wide-band is used here")
    deviations += scale_deviations(p)
    failed = int((rows["status"] == "failed").sum()) if len(rows) else 0
    return caption(f"{table.capitalize()}: {paper.CAPTIONS[table]} Corruption: {noise}.",
                   data=describe_data(source, p.datasets), profile=p.profile, n_clips=p.n_clips,
                   iterations=p.iterations,
                   selection="oracle (authors' protocol) and blind last / EMA / discrepancy, all shown, all from the same fits",
                   metrics={"PSNR": metrics.PSNR_DEFINITION, "PESQ": metrics.PESQ_MODE_NOTE},
                   deviations=deviations,
                   extra=[fit_description(p, rows), f"failed fits: {failed}; mean ± std over clips (std ddof=1)",
                          discrepancy_note(rows) + f" (no extension past the {p.iterations}-iteration budget here)",
                          baseline_note(baselines, rows)])


def denoising_example(store: ResultStore, p: GaussianDenoisingSettings, rows, source: str = "embedded", root=None):
    """Figure 1 material for the first clip of ``rows``: waveforms (clean, noisy, each design's
    oracle restoration) and each design's per-iteration history."""
    dataset = p.datasets[0]
    clip = load_normalised(dataset, p.n_clips, p.seed, source, root, p.max_samples)[0]  # the grid's first clip
    noisy, _ = noisy_observation(clip, "gaussian", p, None)
    signals = {"clean": clip.audio, f"noisy ({_snr_label(clip.audio, noisy)})": noisy}
    histories = {}
    ok = rows[(rows["clip_id"] == clip.id) & (rows["status"] == "ok")]
    fits = ok.groupby("design")["fit_id"].first()
    for design in [d for d in p.designs if d in fits]:  # the paper's order, not completion order
        fid = fits[design]
        histories[design] = load_history(store.folder, fid)
        est = load_output(store.folder, fid, "oracle")[0]
        signals[f"{design} ({_snr_label(clip.audio, est)})"] = est
    return clip, signals, histories


def discrepancy_points(rows, clip_id: str, histories: dict) -> dict[str, tuple[int, float, bool]]:
    """Per design of ``histories``: ``(iteration, SNR, reached)`` of the discrepancy rule's output
    for ``clip_id`` (Figure 1 marks it on the SNR curves). Designs without the rule are left out."""
    d = rows[(rows["clip_id"] == clip_id) & (rows["selection"] == "discrepancy") & (rows["status"] == "ok")]
    out = {}
    for design, h in histories.items():
        hit = d[d["design"] == design]
        if hit.empty or "snr" not in h:
            continue
        it = int(hit["best_iteration"].iloc[0])
        snr = h.loc[h["iteration"] == it, "snr"]
        out[design] = (it, float(snr.iloc[0]) if len(snr) else float("nan"),
                       str(hit["discrepancy_reached"].iloc[0]).lower() == "true")
    return out


#: Columns of :func:`example_peaks`, in order.
PEAK_COLUMNS = ("peak_snr", "peak_iteration", "last_snr", "discrepancy_snr", "discrepancy_iteration",
                "discrepancy_reached")


def example_peaks(histories: dict[str, pd.DataFrame], points: dict[str, tuple[int, float, bool]]) -> pd.DataFrame:
    """Figure 1's numbers, one row per design of ``histories`` (index: the design).

    From each design's per-iteration history: ``peak_snr`` and ``peak_iteration`` (what the oracle
    keeps), ``last_snr`` (the last iterate); from ``points`` (:func:`discrepancy_points`): the
    discrepancy rule's ``discrepancy_snr``, ``discrepancy_iteration`` and ``discrepancy_reached``
    (NaN, -1 and False for a design without the rule).
    """
    lines = {}
    for design, h in histories.items():
        it, snr, reached = points.get(design, (-1, float("nan"), False))
        lines[design] = {"peak_snr": float(h["snr"].max()), "peak_iteration": int(h.loc[h["snr"].idxmax(), "iteration"]),
                         "last_snr": float(h["snr"].iloc[-1]), "discrepancy_snr": float(snr),
                         "discrepancy_iteration": int(it), "discrepancy_reached": bool(reached)}
    return pd.DataFrame.from_dict(lines, orient="index", columns=list(PEAK_COLUMNS))


def example_checks(peaks: pd.DataFrame) -> dict:
    """The named numbers notebook 01 publishes: ``n_designs`` and ``<design>/<column>`` of
    :func:`example_peaks` (Python scalars: ints and booleans stay so in checks.json)."""
    out: dict = {"n_designs": int(len(peaks))}
    for design, row in peaks.iterrows():
        for column in PEAK_COLUMNS:
            value = row[column]
            out[f"{design}/{column}"] = value.item() if hasattr(value, "item") else value
    return out


def _snr_label(clean, est) -> str:
    return f"SNR {metrics.snr(clean, est):.1f} dB"
