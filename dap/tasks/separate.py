"""Two-source separation (paper 1, section 4.3; Table 4): Double-DIP's two sources with Deep Audio
Prior's time masks, time-coherent source inputs and loss family. Why each piece: docs/separation.md.

Three deep priors with fixed latent inputs (:class:`SeparationGenerator`): two generate raw
sources ``s1``, ``s2`` from latents that are nearly constant along time (:func:`coherent_latent`),
the third two time masks ``M1(t)``, ``M2(t)`` in [0, 1]. The estimates are ``M1 * s1`` and
``M2 * s2``; the mixture is modelled as their sum.

Domain (``domain=``): ``"magnitude"`` (default: ``|f(z)|`` magnitudes, estimates with the mixture's
phase, Deep Audio Prior's choice) or ``"complex"`` (real+imag like the other tasks of paper 1; the
masks scale both). The spectrograms are divided by the RMS of the mixture's STFT magnitudes, so the
loss weights do not depend on the clip's level.

The loss (:mod:`dap.tasks.separation_loss`): ``mixture`` (L1, or MSE with ``data_norm="l2"``, between the modelled and the observed normalised mixture), ``smoothness`` (mean absolute frame-to-frame change
of the *raw* sources), ``exclusion`` (Deep Audio Prior's, on the estimates' magnitudes),
``presence`` (each estimate keeps at least ``presence_min`` of the estimates' energy) and an
optional late ``binarisation`` of the masks.

Collapse guard (:class:`CollapseGuard`): checked at every tracked iteration against the observed
mixture; a collapsed fit is restarted from new seeds. ``FitResult.extra["restarts"]`` counts the
restarts, ``extra["collapsed"]`` says whether the kept fit collapsed, ``extra["source_levels_db"]``
gives the last iterate's levels. Estimates are never clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import nn

from dap import metrics
from dap.core.audio import check_audio, istft, stft
from dap.core.errors import DapError
from dap.engine.fit import FitConfig, FitResult, LatentPrior, fit
from dap.priors import build_prior
from dap.core.seeds import sub_seed
from dap.tasks.registry import Observation, Task, register_task
from dap.tasks.separation_loss import _EPS, SeparationWeights, components, separation_loss

DOMAINS = ("magnitude", "complex")
#: Source names of Table 4, in the order of the references.
SOURCES = ("piano", "drums")
#: Metrics per source (Table 4, plus the SDR improvement over the mixture, waveform SNR and level).
SEPARATION_METRICS = ("SDR", "SDRi", "SIR", "Spec. SNR", "Env. Dist.", "SNR", "Level")


class SeparationError(DapError, ValueError):
    """Bad separation settings or signals (length mismatch, unknown domain...)."""


@dataclass
class CollapseGuard:
    """When a fit counts as collapsed, and how often it is restarted.

    Checked at every tracked iteration from ``check_from`` (a fraction of the budget, and never
    before iteration ``min_iteration``) on, against the *observed* mixture: the fit has collapsed
    when one estimate is more than ``collapse_db`` below the mixture while the other one holds it
    (their sum within ``fitted_db`` of its energy), or when both are that far below it (a fit whose
    masks have shut: sigmoids saturated at 0 pass no gradient, so it cannot recover). Before
    ``check_from`` low levels are under-fitting, not collapse.
    """

    collapse_db: float = -15.0
    fitted_db: float = -3.0
    check_from: float = 0.3
    min_iteration: int = 20
    max_restarts: int = 2

    def first_check(self, iterations: int) -> int:
        """The first iteration checked in a fit of ``iterations``."""
        return max(self.min_iteration, math.ceil(self.check_from * iterations))

    def collapsed(self, levels_db: np.ndarray, model_db: float) -> bool:
        """levels_db: each estimate's energy relative to the observed mixture (dB); model_db: the
        modelled mixture's (the sum of the estimates)."""
        low = np.asarray(levels_db) < self.collapse_db
        return bool(low.all() or (low.any() and model_db > self.fitted_db))


# ----------------------------------------------------------------------------- mixtures
def make_mixture(piano: np.ndarray, drums: np.ndarray, ratio_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mix two sources at a stated energy ratio: ``10 log10(E_piano / E_drums) = ratio_db``, the
    mixture then scaled (with both references) to peak 1.

    piano, drums: ``(L,)``. Returns ``(mixture (L,), references (2, L))`` with the references in
    :data:`SOURCES` order; ``mixture == references.sum(0)`` exactly (float32).
    """
    p, d = check_audio(piano, "piano source").astype(np.float64), check_audio(drums, "drum source").astype(np.float64)
    if p.shape != d.shape:
        raise SeparationError(f"piano has {p.shape[0]} samples, drums {d.shape[0]}; they must match")
    if not math.isfinite(ratio_db):
        raise SeparationError(f"ratio_db must be a finite number of dB, got {ratio_db}")
    p = p / np.sqrt(np.mean(p ** 2))
    d = d / np.sqrt(np.mean(d ** 2)) * 10 ** (-ratio_db / 20)
    refs = np.stack([p, d]) / np.max(np.abs(p + d))
    refs = refs.astype(np.float32)
    return refs.sum(axis=0), refs


# ----------------------------------------------------------------------------- the generator

class SeparationGenerator(nn.Module):
    """Three :class:`dap.engine.fit.LatentPrior` s driven as one generator by :func:`dap.engine.fit.fit`.

    Two priors generate the raw sources ``s1``, ``s2`` ``(1, C, F, T)`` (C = 1: magnitudes >= 0;
    C = 2: real/imag); the third generates two *time* masks ``M1(t), M2(t)`` in [0, 1], one gain per
    source and frame (its two output channels averaged over frequency, then a sigmoid), so a mask
    can switch a source on and off but cannot carve the spectrum: the split of each frame's spectrum
    between the sources is left to the two source priors. ``forward()`` returns everything packed
    along channels, ``(1, 2C + 2, F, T)`` = ``[s1, s2, M1, M2]`` with the masks repeated along
    frequency (one tensor, because the engine detaches and converts the prediction as one);
    :func:`unpack` splits it. Each prior has its own latent z of ``shape`` ``(1, 2, F, T)``.
    """

    def __init__(self, design: str, shape: tuple[int, ...], seed: int, domain: str = "magnitude",
                 prior_opts: dict | None = None, time_variation: float | None = 0.1):
        super().__init__()
        if domain not in DOMAINS:
            raise SeparationError(f"domain must be one of {DOMAINS}, not {domain!r}")
        self.domain = domain
        opts = dict(prior_opts or {})
        channels = 1 if domain == "magnitude" else 2
        torch.manual_seed(seed)  # network initialisation (three different draws, in order)
        self.source1 = LatentPrior(build_prior(design, out_channels=channels, **opts), shape, sub_seed(seed, 1))
        self.source2 = LatentPrior(build_prior(design, out_channels=channels, **opts), shape, sub_seed(seed, 2))
        self.masks = LatentPrior(build_prior(design, out_channels=2, **opts), shape, sub_seed(seed, 3))
        if time_variation is not None:
            for k, prior in ((1, self.source1), (2, self.source2)):
                prior.z.copy_(coherent_latent(shape, sub_seed(seed, 10 + k), time_variation))

    def forward(self):
        """The two sources and the masks from their fixed latents.

        Returns:
            ``(1, 2 * C + 2, F, T)``: source 1 ``(1, C, F, T)``, source 2, and the two time masks (in [0, 1],
            constant along F); C = 1 (magnitude) or 2 (real, imaginary).
        """
        s1, s2 = self.source1(), self.source2()
        if self.domain == "magnitude":
            s1, s2 = s1.abs(), s2.abs()  # abs (not softplus/ReLU): can reach 0, never a dead gradient
        masks = torch.sigmoid(self.masks().mean(dim=-2, keepdim=True))  # (1, 2, 1, T)
        return torch.cat([s1, s2, masks.expand(-1, -1, s1.shape[-2], -1)], dim=1)


def coherent_latent(shape: tuple[int, ...], seed: int, time_variation: float) -> torch.Tensor:
    """A latent ``(1, C, F, T)`` that is nearly constant along time: ``a(f) + time_variation * n(f, t)``
    with ``a`` and ``n`` N(0, 1), rescaled to unit variance.

    A convolutional prior maps a time-constant input to a time-constant output (away from the
    edges), so a source generated from it starts as one spectral template and departs from it only
    as far as the small time-varying part lets it (Deep Audio Prior also feeds its source networks
    inputs that repeat along time); the time masks then say when each source sounds.
    """
    g = torch.Generator().manual_seed(seed)
    base = torch.randn((*shape[:-1], 1), generator=g)
    z = base + time_variation * torch.randn(shape, generator=g)
    return z / math.sqrt(1 + time_variation ** 2)


def unpack(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 2C + 2, F, T)`` from :class:`SeparationGenerator` -> ``(s1, s2, M1, M2)``, the masks
    ``(B, 1, F, T)``."""
    c = (pred.shape[1] - 2) // 2
    if pred.shape[1] != 2 * c + 2 or c not in (1, 2):
        raise SeparationError(f"expected (B, 4 or 6, F, T) packed [s1, s2, M1, M2], got {tuple(pred.shape)}")
    return pred[:, :c], pred[:, c:2 * c], pred[:, 2 * c:2 * c + 1], pred[:, 2 * c + 1:]


# ----------------------------------------------------------------------------- the fit
def source_levels_db(estimates: np.ndarray, mixture: np.ndarray | None = None) -> np.ndarray:
    """Energy of each estimate ``(S, L)`` relative to ``mixture`` ``(L,)`` (default: the sum of the
    estimates, i.e. the modelled mixture), in dB ``(S,)``."""
    if mixture is None:
        mixture = np.sum(np.asarray(estimates, np.float64), axis=0)
    mix_e = float(np.sum(np.asarray(mixture, np.float64) ** 2))
    est_e = np.sum(np.asarray(estimates, np.float64) ** 2, axis=-1)
    return 10 * np.log10(np.maximum(est_e, 1e-30) / max(mix_e, 1e-30))


def restore(mixture: np.ndarray, design: str, config: FitConfig,
            seed: int = 0, references: np.ndarray | None = None, domain: str = "magnitude",
            weights: SeparationWeights | None = None, guard: CollapseGuard | None = None,
            mismatched_istft: bool = False, prior_opts: dict | None = None, time_variation: float | None = 0.1,
            **fit_kwargs) -> FitResult:
    """Separate one mixture ``(L,)`` into two sources with three deep priors.

    ``design`` one of :data:`dap.priors.ALL_DESIGNS`; ``config`` the engine's settings, required
    (:func:`dap.studies.fit_config` gives a profile's) so that no fit runs the paper's budget by accident.
    references: ``(2, L)`` clean sources (optional); with them the engine tracks, under the best
    permutation, the waveform SNR of the *worse* of the two estimates (``snr``, the oracle rule's
    score: a silent estimate scores 0 dB, so an iterate that fits one source and leaves the other
    empty cannot win) and their mean (``snr_mean``). Outputs of every rule are ``(2, L)`` in the
    priors' order (not matched to the references: see :func:`evaluate`), never clipped.
    ``extra``: ``restarts``, ``collapsed`` (the kept attempt collapsed), ``source_levels_db``
    ("a;b": the last iterate's estimates against the observed mixture) and the last unweighted
    loss terms ``loss_<term>``.
    """
    mixture = check_audio(mixture, "mixture")
    if domain not in DOMAINS:
        raise SeparationError(f"domain must be one of {DOMAINS}, not {domain!r}")
    weights, guard = weights or SeparationWeights(), guard or CollapseGuard()
    if weights.data_norm not in ("l1", "l2"):
        raise SeparationError(f"data_norm must be 'l1' or 'l2', not {weights.data_norm!r}")
    config = replace(config, clip=None)  # two sources of a peak-1 mixture may each exceed 1
    spectra = _Spectra.of(mixture, domain)
    track = None if references is None else _oracle_score(references, mixture.shape[0])
    user_on_step, user_stop = fit_kwargs.pop("on_step", None), fit_kwargs.pop("stop", None)
    total_seconds, restarts = 0.0, 0
    while True:
        attempt = _Attempt(mixture, spectra, domain, weights, guard, config, user_on_step, user_stop,
                           may_restart=restarts < guard.max_restarts)  # the last allowed attempt runs to the end
        generator = SeparationGenerator(design, tuple(spectra.X.shape), seed if restarts == 0 else
                                        sub_seed(seed, 100 + restarts), domain, prior_opts, time_variation)
        decode = partial(_decode, spectra=spectra, domain=domain, mismatched_istft=mismatched_istft, cache={})
        result = fit(generator, attempt.loss, decode, config, track=track, on_step=attempt.on_step,
                     stop=attempt.stop, **fit_kwargs)
        total_seconds += result.seconds
        if not (attempt.collapsed and attempt.may_restart and result.ok and not attempt.user_stopped):
            break
        restarts += 1
    result.seconds = total_seconds
    result.extra.update({"restarts": restarts, "collapsed": attempt.collapsed, "domain": domain,
                         "source_levels_db": attempt.levels,
                         **{f"loss_{k}": round(v, 6) for k, v in attempt.terms.items()}})
    return result


@dataclass
class _Spectra:
    """The observed mixture in the fit's units: its STFT ``X`` ``(1, 2, F, T)``, unit phasors
    ``phase`` (same shape), the RMS magnitude ``scale`` (see the module doc) and the normalised
    ``target`` (magnitude ``(1, 1, F, T)`` or real/imag ``(1, 2, F, T)``)."""

    X: torch.Tensor
    phase: torch.Tensor
    scale: float
    target: torch.Tensor
    length: int

    @classmethod
    def of(cls, mixture: np.ndarray, domain: str) -> "_Spectra":
        X = stft(mixture)[None]
        mag = torch.sqrt(X[:, :1] ** 2 + X[:, 1:] ** 2)
        scale = float(torch.sqrt(torch.mean(mag ** 2)))
        return cls(X, X / (mag + _EPS), scale, (mag if domain == "magnitude" else X) / scale, mixture.shape[0])


def _oracle_score(references: np.ndarray, length: int):
    """The engine's ``track``: waveform SNR of the worse estimate and the mean, under the best
    permutation of the clean sources ``references`` ``(2, L)``."""
    refs = np.asarray(references, dtype=np.float32)
    if refs.shape != (2, length):
        raise SeparationError(f"references must be (2, {length}), got {refs.shape}")

    def track(wav: np.ndarray) -> dict[str, float]:
        snrs = np.array([[metrics.snr(refs[i], wav[j]) for j in range(2)] for i in range(2)])
        pairs = [snrs[[0, 1], [0, 1]], snrs[[0, 1], [1, 0]]]
        best = max(pairs, key=np.mean)
        return {"snr": float(np.min(best)), "snr_mean": float(np.mean(best))}

    return track


def _decode(pred: torch.Tensor, spectra: _Spectra, domain: str, mismatched_istft: bool, cache: dict) -> torch.Tensor:
    """The generator's output -> the two estimated waveforms ``(2, L)`` (magnitudes take the
    mixture's phase); ``cache`` keeps the phase on the output's device."""
    c1, c2 = components(*unpack(pred))
    spec = torch.cat([c1, c2]) * spectra.scale  # (2, C, F, T)
    if domain == "magnitude":
        if "phase" not in cache:
            cache["phase"] = spectra.phase.to(spec.device)
        spec = spec * cache["phase"]  # magnitude x mixture phase -> (2, 2, F, T)
    return istft(spec, spectra.length, mismatched=mismatched_istft)


class _Attempt:
    """One fit from one seed: the loss with its schedule (exclusion / binarisation switched on
    part-way), the collapse check against the observed mixture at every tracked iteration, and the
    stop rule (a person's stop request, or a collapse while a restart is still allowed)."""

    def __init__(self, mixture, spectra: _Spectra, domain: str, weights: SeparationWeights, guard: CollapseGuard,
                 config: FitConfig, user_on_step, user_stop, may_restart: bool):
        self.mixture, self.spectra, self.weights, self.guard, self.config = mixture, spectra, weights, guard, config
        self.user_on_step, self.user_stop, self.may_restart = user_on_step, user_stop, may_restart
        self.first_check = guard.first_check(config.iterations)
        self.step, self.collapsed, self.user_stopped, self.levels, self.terms = 0, False, False, "", {}
        self._target = None

    def loss(self, pred: torch.Tensor) -> torch.Tensor:
        """The separation loss of one prediction; its terms are kept in ``self.terms``.

        Args:
            pred: ``(1, 2 * C + 2, F, T)``: two sources and two masks (:func:`unpack`).

        Returns:
            A scalar ``()``.
        """
        s1, s2, m1, m2 = unpack(pred)
        if self._target is None:
            self._target = self.spectra.target.to(s1.device)
        self.step += 1
        binarise = self.step > self.weights.binarise_from * self.config.iterations
        exclude = self.step > self.weights.exclusion_from * self.config.iterations
        loss, self.terms = separation_loss(s1, s2, m1, m2, self._target, self.weights, binarise, exclude)
        return loss

    def on_step(self, it: int, info: dict) -> None:
        wav = info["waveforms"]
        levels = source_levels_db(wav, self.mixture)
        self.levels = ";".join(f"{v:.1f}" for v in levels)
        if it >= self.first_check:
            model_db = float(source_levels_db(wav.sum(0, keepdims=True), self.mixture)[0])
            self.collapsed = self.guard.collapsed(levels, model_db)
        if self.user_on_step is not None:
            self.user_on_step(it, info)

    def stop(self) -> bool:
        if self.user_stop is not None and self.user_stop():
            self.user_stopped = True  # a person asked to stop: never restart
            return True
        return self.may_restart and self.collapsed


# ----------------------------------------------------------------------------- evaluation
def evaluate(references: np.ndarray, estimates: np.ndarray, names=SOURCES) -> dict[str, float]:
    """Table 4 metrics per source, after matching estimates to references by the best permutation.

    references, estimates: ``(2, L)``; the mixture is ``references.sum(0)``. Keys
    ``"<source>|<metric>"`` for metric in :data:`SEPARATION_METRICS`: BSS Eval v4 SDR and SIR with
    one window over the whole clip (NaN for an all-zero estimate: a silent estimate has no SDR),
    ``SDRi`` = SDR minus the SDR of the mixture itself as that source's estimate, spectral SNR,
    envelope distance, waveform SNR, and ``Level`` = the estimate's energy relative to the
    mixture's (dB; -inf when silent); plus ``"permutation"`` (0 = identity, 1 = swapped).
    """
    refs = np.asarray(references, dtype=np.float64)
    ests = np.asarray(estimates, dtype=np.float64)
    if refs.shape != ests.shape or refs.shape[0] != len(names):
        raise SeparationError(f"references {refs.shape} and estimates {ests.shape} must both be ({len(names)}, L)")
    perm = metrics.best_permutation(refs, ests)
    ests = ests[list(perm)]
    mixture = refs.sum(axis=0)
    bss = _bss_per_source(refs, ests)
    mix_sdr = _bss_per_source(refs, np.repeat(mixture[None], len(names), axis=0))["SDR"]
    levels = source_levels_db(ests, mixture)
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        silent = not np.any(ests[i])
        out[f"{name}|SDR"] = float(bss["SDR"][i])
        out[f"{name}|SDRi"] = float(bss["SDR"][i] - mix_sdr[i])
        out[f"{name}|SIR"] = float(bss["SIR"][i])
        out[f"{name}|Spec. SNR"] = metrics.spectral_snr(refs[i], ests[i])
        out[f"{name}|Env. Dist."] = metrics.envelope_distance(refs[i], ests[i])
        out[f"{name}|SNR"] = metrics.snr(refs[i], ests[i])
        out[f"{name}|Level"] = -math.inf if silent else float(levels[i])
    out["permutation"] = float(perm != tuple(range(len(names))))
    return out


def _bss_per_source(refs: np.ndarray, ests: np.ndarray) -> dict[str, np.ndarray]:
    """Whole-clip BSS Eval ``(S,)`` arrays, NaN only for the all-zero estimates.

    museval scores each estimate against the references alone, but one all-zero estimate makes it
    return NaN for every source; a silent estimate is therefore replaced by another one for the
    call and its own values set to NaN afterwards.
    """
    silent = ~np.any(ests, axis=1)
    nan = {k: np.full(len(refs), np.nan) for k in ("SDR", "SIR", "SAR")}
    if silent.all():
        return nan
    stand_in = ests.copy()
    stand_in[silent] = ests[np.flatnonzero(~silent)[0]]
    try:
        bss = metrics.bss_eval(refs, stand_in, window=None, on_silent="nan")
    except metrics.UndefinedMetric:
        return nan
    return {k: np.where(silent, np.nan, np.asarray(v, dtype=np.float64)) for k, v in bss.items()}


#: The trivial answers Table 4 is scored against: what a fit that separates nothing would return.
TRIVIAL_ESTIMATES = {
    "mixture_to_louder": "the mixture as the estimate of the louder source, silence for the other (what a collapsed fit returns)",
    "half_half": "half of the mixture as each estimate",
}


def trivial_estimates(references: np.ndarray) -> dict[str, np.ndarray]:
    """The :data:`TRIVIAL_ESTIMATES` of a mixture ``references.sum(0)``, each ``(2, L)`` in the
    references' order; which source is louder is read from the references."""
    refs = np.asarray(references, dtype=np.float64)
    mixture = refs.sum(axis=0)
    collapsed = np.zeros_like(refs)
    collapsed[int(np.argmax(np.sum(refs ** 2, axis=1)))] = mixture
    return {"mixture_to_louder": collapsed, "half_half": np.stack([mixture / 2, mixture / 2])}


def corrupt(clean: np.ndarray, seed: int, ratio_db: float = 0.0) -> Observation:
    """The registered corruption: the sources ``(2, L)`` (piano, drums) mixed by :func:`make_mixture`;
    the scaled references go to ``context`` (the task is scored against them)."""
    mixture, references = make_mixture(clean[0], clean[1], ratio_db)
    return Observation(mixture, context={"references": references}, extra={"ratio_db": ratio_db})


def _restore_observed(observed: np.ndarray, design: str, config: FitConfig, references: np.ndarray,
                      clean=None, **kwargs) -> FitResult:
    """:func:`restore` in the argument order of :class:`dap.tasks.registry.Task` (scored against the
    scaled ``references``, not the unscaled ``clean`` sources)."""
    return restore(observed, design, config, references=references, **kwargs)


def _evaluate_observed(clean: np.ndarray, estimate: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """:func:`evaluate` against the scaled ``references`` of the observation."""
    return evaluate(references, estimate)


register_task(Task("separate", corrupt, _restore_observed, _evaluate_observed,
                   metrics=tuple(f"{s}|{m}" for s in SOURCES for m in SEPARATION_METRICS),
                   description="two sources out of one mixture with three priors (Table 4)"))
