"""Separation study: Table 4 of paper 1 (piano + drum mixtures, four prior designs).

A fit separates one mixture into two sources, so it yields metrics for *two* data sets (the
paper's columns are per source). :func:`dap.tasks.separate.evaluate` returns keys
``"<source>|<metric>"``; :func:`dap.engine.grid.run_grid` stores them as they are (its rows.csv
keeps ``dataset = "piano+drums"`` and metric ``"piano|SDR"``), and :func:`per_source_rows` turns
them into rows whose ``dataset`` is the source name and ``metric`` the paper's metric name, which
is what :func:`dap.report.tables.publish_table` compares with Table 4.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from dap import metrics
from dap.core.device import NUMPY_PRECISION_CLASS
from dap.core.files import atomic_write_text
from dap.core.fingerprint import PAPER1, code_fingerprint
from dap.report import paper
from dap.core.seeds import derive_seed, stream
from dap.core.store import ResultStore
from dap.data import Clip
from dap.engine.grid import Grid, load_history, load_output, run_grid
from dap.priors import DESIGN_LABELS
from dap.config.notebook_settings import SeparationSettings
from dap.report.tables import caption
from dap.studies.common import (BASELINE_FILE, COMMON_DEVIATIONS, baseline_note, describe_data, fit_description,
                                load_normalised, registered_baselines, run_baselines, scale_deviations, study_setup)
from dap.tasks import separate, separation_loss

MIXTURE_DATASET = "piano+drums"


def separation_weights(p: SeparationSettings) -> separation_loss.SeparationWeights:
    """The loss weights of the settings ``p`` (keys ``w_<term>``, ``binarise_from``, ``coverage_min``);
    missing keys keep the defaults of :class:`dap.tasks.separation_loss.SeparationWeights`."""
    default = separation_loss.SeparationWeights()
    return separation_loss.SeparationWeights(**{k: getattr(p, f"w_{k}", getattr(p, k, v)) for k, v in asdict(default).items()})


def collapse_guard(p: SeparationSettings) -> separate.CollapseGuard:
    """The collapse guard of the settings ``p`` (keys as the fields of :class:`dap.tasks.separate.CollapseGuard`)."""
    default = separate.CollapseGuard()
    return separate.CollapseGuard(**{k: getattr(p, k, v) for k, v in asdict(default).items()})


def make_mixtures(n: int, seed: int, source: str = "embedded", root=None, ratio_db: float = 0.0,
                  max_samples: int | None = None) -> list[Clip]:
    """``n`` piano + drum mixtures, reproducible from ``seed``.

    ``n`` piano clips and ``n`` drum clips are drawn (each set from its own seed derived from
    ``seed``), cut to their most energetic ``max_samples`` when given, paired in a seeded random
    order and mixed at the energy ratio ``ratio_db`` (piano over drums), the mixture peak-normalised
    (:func:`dap.tasks.separate.make_mixture`). Each mixture is a :class:`Clip` with
    ``dataset = "piano+drums"``, ``id = "<piano id>+<drum id>"``, ``audio`` the mixture ``(L,)`` and
    ``stems = {"piano": (L,), "drums": (L,)}`` the references.
    """
    pianos = load_normalised("piano", n, derive_seed(seed, "mix", "piano"), source, root, max_samples)
    drums = load_normalised("drums", n, derive_seed(seed, "mix", "drums"), source, root, max_samples)
    order = stream(derive_seed(seed, "mix", "pairs")).permutation(n)
    mixtures = []
    for piano, k in zip(pianos, order):
        drum = drums[int(k)]
        mixture, refs = separate.make_mixture(piano.audio, drum.audio, ratio_db)
        mixtures.append(Clip(id=f"{piano.id}+{drum.id}", dataset=MIXTURE_DATASET, audio=mixture, sr=piano.sr,
                             source=source, kind=f"{piano.kind} + {drum.kind}",
                             stems={"piano": refs[0], "drums": refs[1]},
                             meta={"piano_id": piano.id, "drums_id": drum.id, "ratio_db": ratio_db}))
    return mixtures


def references(clip: Clip) -> np.ndarray:
    """The clean sources ``(2, L)`` of a mixture clip, in :data:`dap.tasks.separate.SOURCES` order."""
    return np.stack([clip.stems[name] for name in separate.SOURCES])


def separation_study(store: ResultStore, p: SeparationSettings, source: str = "embedded", root=None,
                     progress=print) -> pd.DataFrame:
    """Table 4: fit every design in ``p.designs`` to ``p.n_clips`` mixtures.

    Returns per-source rows (:func:`per_source_rows`): ``dataset`` is ``"piano"`` or ``"drums"``
    and ``metric`` one of :data:`dap.tasks.separate.SEPARATION_METRICS`; each fit's ``restarts``
    and ``collapsed`` flags ride along, and its ``permutation`` row keeps ``dataset = "piano+drums"``.
    An optional ``p.prior_opts`` (e.g. ``{"widths": (16, 32, 64)}``: smaller priors for CPUs) is
    passed to :func:`dap.priors.build_prior` for all three priors.
    """
    weights, guard = separation_weights(p), collapse_guard(p)
    setup = study_setup(p, "separate", {"domain": p.domain, "ratio_db": p.ratio_db, "time_variation": p.time_variation,
                                        **weights.as_settings(), **asdict(guard)})
    mixtures = study_mixtures(p, source, root)
    run_fit = partial(_separate_clip, cfg=setup.config, seed=p.seed, domain=p.domain, weights=weights,
                      guard=guard, mismatched_istft=p.mismatched_istft, prior_opts=setup.prior_opts,
                      time_variation=p.time_variation)
    rows = run_grid(store, setup.grid, mixtures, list(p.designs), run_fit, _evaluate_clip, progress=progress,
                    **setup.parallel())
    return per_source_rows(rows)


def study_mixtures(p: SeparationSettings, source: str = "embedded", root=None) -> list[Clip]:
    """The mixtures of the settings ``p`` (:func:`make_mixtures` with its settings)."""
    return make_mixtures(p.n_clips, p.seed, source, root, p.ratio_db, p.max_samples)


def _separate_clip(clip: Clip, design: str, cfg, seed: int, **options):
    """One separation fit (module level, so worker processes can run it)."""
    return separate.restore(clip.audio, design, cfg, seed=derive_seed(seed, clip.dataset, clip.id),
                            references=references(clip), **options)


def _evaluate_clip(clip: Clip, estimates: np.ndarray) -> dict[str, float]:
    return separate.evaluate(references(clip), estimates)


#: Where the trivial answers' rows go, beside the fits' rows.csv (the claims read them there).
TRIVIAL_FILE = "trivial.csv"


def trivial_rows(p: SeparationSettings, source: str = "embedded", root=None, folder=None) -> pd.DataFrame:
    """Per-source rows of the trivial answers (:data:`dap.tasks.separate.TRIVIAL_ESTIMATES`) on the
    study's mixtures, scored like the fits: ``design`` is the answer's name, ``selection`` is
    ``"trivial"``. They cost milliseconds and are recomputed; with ``folder`` they are also written to
    ``folder/trivial.csv`` (:data:`TRIVIAL_FILE`) so that the claims can set the fits against them."""
    out = []
    stamp = {"code": code_fingerprint(PAPER1), "precision_class": NUMPY_PRECISION_CLASS}  # numpy, like the baselines
    for clip in study_mixtures(p, source, root):
        for name, est in separate.trivial_estimates(references(clip)).items():
            for key, value in separate.evaluate(references(clip), est).items():
                if "|" in key:
                    dataset, metric = key.split("|", 1)
                    out.append({"design": name, "dataset": dataset, "metric": metric, "selection": "trivial",
                                "value": value, "clip_id": clip.id, "status": "ok", "fit_id": f"{name}:{clip.id}",
                                "task": "separate", "profile": p.profile, "source": clip.source, **stamp})
    rows = pd.DataFrame(out)
    if folder is not None:
        atomic_write_text(Path(folder) / TRIVIAL_FILE, rows.to_csv(index=False))
    return rows


def separation_baselines(store: ResultStore, p: SeparationSettings, source: str = "embedded", root=None,
                         progress=print) -> pd.DataFrame:
    """The classical baseline of Table 4 (``hpss``, :func:`dap.baselines.hpss`: harmonic = piano,
    percussive = drums) on the study's mixtures, scored like the fits (:func:`dap.tasks.separate.evaluate`,
    best permutation); rows go to ``baselines.csv`` beside ``store``'s rows. Returns per-source rows
    (:func:`per_source_rows`)."""
    settings = {"ratio_db": p.ratio_db, "max_samples": p.max_samples}
    grid = Grid(task="separate", settings=settings, profile=p.profile, seed=p.seed)
    rows = run_baselines(ResultStore(store.folder, BASELINE_FILE), grid, study_mixtures(p, source, root),
                         registered_baselines("separate", lambda c: (c.audio, references(c), {})), _evaluate_clip,
                         progress=progress)
    return per_source_rows(rows)


def beats_trivial(rows: pd.DataFrame, trivial: pd.DataFrame, metric: str = "SIR", margin_db: float = 0.0) -> pd.DataFrame:
    """Per (selection, design, mixture, source): the fit's ``metric``, the best trivial answer's
    (NaN values of a silent trivial estimate are left out) and whether the fit beats it by more
    than ``margin_db``. A failed fit or a NaN value never beats it."""
    ok = rows[(rows["metric"] == metric) & rows["dataset"].isin(separate.SOURCES)].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce").where(ok["status"] == "ok")
    best = (trivial[trivial["metric"] == metric].assign(value=lambda d: pd.to_numeric(d["value"], errors="coerce"))
            .groupby(["clip_id", "dataset"])["value"].max().rename("trivial_best").reset_index())
    out = ok[["selection", "design", "clip_id", "dataset", "value"]].merge(best, on=["clip_id", "dataset"], how="left")
    out["beats"] = (out["value"] - out["trivial_best"]) > margin_db
    return out


def per_mixture_table(rows: pd.DataFrame, trivial: pd.DataFrame, selection: str,
                      metrics=("SIR", "SDRi", "Level"), baselines: pd.DataFrame | None = None) -> str:
    """Markdown: one line per (mixture, design, trivial answer or classical baseline), each source's
    ``metrics`` under ``selection``, then one line per design saying on how many mixtures it beats
    both trivial answers in SIR for both sources (the baselines are shown, never counted as trivial)."""
    extra = [] if baselines is None else [baselines[baselines["status"] == "ok"]]
    both = pd.concat([rows[(rows["selection"] == selection) & (rows["status"] == "ok")], trivial, *extra],
                     ignore_index=True)
    both = both[both["dataset"].isin(separate.SOURCES) & both["metric"].isin(metrics)]
    if both.empty:
        return ""
    both = both.assign(value=pd.to_numeric(both["value"], errors="coerce"))
    table = both.pivot_table(index=["clip_id", "design"], columns=["dataset", "metric"], values="value",
                             aggfunc="first", sort=False)
    cols = [(d, m) for d in separate.SOURCES for m in metrics if (d, m) in table.columns]
    labels = {**DESIGN_LABELS, **{k: f"trivial: {k.replace('_', ' ')}" for k in separate.TRIVIAL_ESTIMATES},
              "hpss": "baseline: HPSS"}
    lines = ["| Mixture | Design | " + " | ".join(f"{d} {m}" for d, m in cols) + " |",
             "|" + "---|" * (len(cols) + 2)]
    for (clip_id, design), r in table.iterrows():
        cells = ["—" if pd.isna(r[c]) else f"{r[c]:.2f}" for c in cols]
        lines.append(f"| {clip_id} | {labels.get(design, design)} | " + " | ".join(cells) + " |")
    verdict = beats_trivial(rows[rows["selection"] == selection], trivial)
    per_design = verdict.groupby("design", sort=False).agg(
        n=("clip_id", "nunique"),
        k=("clip_id", lambda c: int(verdict.loc[c.index].groupby("clip_id")["beats"].all().sum())))
    lines.append("")
    lines += [f"- {DESIGN_LABELS.get(d, d)}: both estimates beat both trivial answers in SIR on {r.k} of {r.n} mixtures"
              for d, r in per_design.iterrows()]
    return "\n".join(lines) + "\n"


def per_source_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Split metrics ``"<source>|<metric>"`` into ``dataset = <source>`` and ``metric = <metric>``;
    other rows (failed fits, ``permutation``) are kept unchanged."""
    rows = rows.copy()
    if rows.empty:
        return rows
    metric = rows["metric"].astype(str)
    split = metric.str.contains("|", regex=False)
    parts = metric[split].str.split("|", n=1, expand=True)
    if len(parts):
        rows.loc[split, "dataset"] = parts[0].to_numpy()
        rows.loc[split, "metric"] = parts[1].to_numpy()
    return rows


def per_mixture_report(rows: pd.DataFrame, trivial: pd.DataFrame, p: SeparationSettings,
                       baselines: pd.DataFrame | None = None) -> str:
    """Markdown for ``table4_per_mixture.md``: :func:`per_mixture_table` under every selection rule,
    with the classical ``baselines`` (rows of :func:`separation_baselines`) beside the trivial answers."""
    return "\n".join(f"**Table 4 per mixture ({rule} rule) with the trivial answers and the HPSS baseline.** "
                     f"Profile `{p.profile}`; SIR and SDRi in dB, Level = estimate energy relative to the mixture (dB).\n\n"
                     + per_mixture_table(rows, trivial, rule, baselines=baselines) for rule in ("oracle", "last", "ema"))


def separation_caption(p: SeparationSettings, source: str, rows, baselines=None) -> str:
    """The caption of Table 4 (see :func:`dap.report.tables.caption`); ``baselines``: the rows of
    :func:`separation_baselines` (their definition and cost go into the caption)."""
    w, g = separation_weights(p), collapse_guard(p)
    fits = rows.drop_duplicates("fit_id") if len(rows) else rows
    restarts = int(pd.to_numeric(fits.get("restarts", pd.Series(dtype=float)), errors="coerce").fillna(0).sum())
    collapsed = int(fits.get("collapsed", pd.Series(dtype=object)).astype(str).eq("True").sum())
    failed = int((fits["status"] == "failed").sum()) if len(fits) else 0
    domain = ("magnitude spectrograms, estimates with the mixture's phase (Deep Audio Prior)"
              if p.domain == "magnitude" else "real+imag spectrograms (paper 1's representation)")
    method = (f"three priors of the same design: two generate raw sources s1, s2 from latents that are nearly "
              f"constant along time (a(f) + {p.time_variation}·n(f, t)), the third two time masks M1(t), M2(t) "
              f"(its outputs averaged over frequency, sigmoid); estimates M1·s1 and M2·s2, mixture modelled as "
              f"their sum; domain: "
              f"{domain}; loss = {w.mixture}·{w.data_norm.upper()}(mixture) + {w.smoothness}·temporal smoothness of "
              f"the raw sources + {w.presence}·presence (each estimate keeps at least {w.presence_min:.0%} of the "
              f"estimates' energy) + {w.exclusion}·exclusion (3 scales, after {w.exclusion_from:.0%} of the "
              f"iterations) + {w.binarisation}·mask binarisation (after {w.binarise_from:.0%}); spectrograms "
              "divided by the mixture's RMS STFT magnitude; estimates not clipped")
    guard_text = (f"collapse guard, checked every iteration from {g.check_from:.0%} of the budget (never before "
                  f"iteration {g.min_iteration}) against the observed mixture: one estimate below {g.collapse_db} dB "
                  f"while the sum is within {-g.fitted_db} dB, or both below {g.collapse_db} dB, restarts the fit "
                  f"with new seeds, at most {g.max_restarts} times; restarts here: {restarts}, kept fits that "
                  f"collapsed: {collapsed}")
    deviations = list(COMMON_DEVIATIONS)
    deviations += [
        "the separation code was never published: Double-DIP's two sources and Deep Audio Prior's time masks, "
        "time-coherent source inputs and loss family (docs/separation.md); the weights, the presence term, the "
        "domain and the collapse rule are our choices",
        f"mixtures: one piano and one drum clip at a source-energy ratio of {p.ratio_db:+.1f} dB (piano over "
        "drums), the mixture peak-normalised (the paper does not give its mixing recipe)",
        "the paper gives no iteration count for separation: paper 1's schedule of the other tasks is used",
    ]
    deviations += scale_deviations(p, unit="mixture(s)")
    trivial = "; ".join(f"{k.replace('_', ' ')} = {v}" for k, v in separate.TRIVIAL_ESTIMATES.items())
    return caption(f"Table4: {paper.CAPTIONS['table4']} Method: {method}.",
                   data=describe_data(source, ("piano", "drums")) + "; one mixture = one piano + one drum clip",
                   profile=p.profile, n_clips=p.n_clips, iterations=p.iterations,
                   selection="oracle (the iterate whose *worse* estimate has the best waveform SNR against its "
                             "clean source, best permutation: the authors' early-stopping protocol, made so that "
                             "a silent estimate cannot win) and blind last / EMA, all shown",
                   metrics={"SDR / SIR": "BSS Eval v4 (museval) with one window over the whole clip; "
                                         "estimates matched to references by the best permutation (mean SNR); "
                                         "NaN for a silent estimate",
                            "SDRi": "SDR minus the SDR of the mixture itself as the estimate",
                            "Level": "estimate energy relative to the mixture (dB; a true source of a 0 dB "
                                     "mixture sits near -3 dB)",
                            "Spec. SNR": metrics.DEFINITIONS["SSNR"], "Env. Dist.": metrics.DEFINITIONS["ENV"],
                            "Trivial answers": trivial + " (scored by the same metrics; see the per-mixture table)"},
                   deviations=deviations,
                   extra=[fit_description(p, rows), guard_text,
                          f"failed fits: {failed}; mean ± std over mixtures (std ddof=1); the paper reported the "
                          "median SDR and the mean SIR over clips, the table shows means and the CSV also medians",
                          baseline_note(baselines, rows)])


def separation_example(store: ResultStore, p: SeparationSettings, rows, source: str = "embedded", root=None,
                       selection: str = "oracle"):
    """Figure material for the first mixture: the clip, waveforms, row by row, of
    (mixture, piano, drums) and, per design, (sum of estimates, piano estimate, drum estimate),
    the estimates matched to the references by the best permutation; and each design's
    per-iteration history (``snr`` = the worse estimate's SNR, ``snr_mean`` = the mean, best permutation)."""
    clip = study_mixtures(p, source, root)[0]
    refs = references(clip)
    signals = {"mixture": clip.audio, "piano (reference)": refs[0], "drums (reference)": refs[1]}
    histories = {}
    ok = rows[(rows["clip_id"] == clip.id) & (rows["status"] == "ok")]
    for design, fid in ok.groupby("design", sort=False)["fit_id"].first().items():
        histories[design] = load_history(store.folder, fid)
        est = load_output(store.folder, fid, selection)
        est = est[list(metrics.best_permutation(refs, est))]
        signals[f"{design}: sum of estimates"] = est.sum(axis=0)
        for name, ref, e in zip(separate.SOURCES, refs, est):
            signals[f"{design}: {name} (SNR {metrics.snr(ref, e):.1f} dB)"] = e
    return clip, signals, histories


def separation_checks(rows: pd.DataFrame, trivial: pd.DataFrame) -> dict:
    """Named numbers about the fits (for the notebook's tests): mixtures, restarts, collapsed fits,
    which data sets the per-source rows carry, and per selection rule the number of (design,
    mixture) fits whose two estimates both beat both trivial answers in SIR, out of how many."""
    fits = rows.drop_duplicates("fit_id") if len(rows) else rows
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    out = {"n_mixtures": int(fits["clip_id"].nunique()) if len(fits) else 0,
           "restarts_total": int(pd.to_numeric(fits.get("restarts", pd.Series(dtype=float)),
                                               errors="coerce").fillna(0).sum()),
           "collapsed_fits": int(fits.get("collapsed", pd.Series(dtype=object)).astype(str).eq("True").sum()),
           "per_source_datasets": ",".join(sorted(set(ok["dataset"]) & set(separate.SOURCES))) if len(ok) else ""}
    if len(rows):
        verdict = beats_trivial(rows, trivial)
        for rule, g in verdict.groupby("selection"):
            per_fit = g.groupby(["design", "clip_id"])["beats"].all()
            out[f"beats_trivial_sir/{rule}"] = int(per_fit.sum())
            out[f"fits/{rule}"] = int(per_fit.size)
    return out
