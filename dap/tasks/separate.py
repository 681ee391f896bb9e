"""Two-source separation (paper 1, section 4.3; Table 4), Double-DIP style with Deep Audio Prior losses.

Three deep priors with fixed latent inputs: two generate the sources ``s1``, ``s2`` and a third,
through a sigmoid, a time-frequency mask ``m`` in [0, 1]. The mixture is modelled as
``m * s1 + (1 - m) * s2`` and the source *estimates* are its two parts ``c1 = m * s1`` and
``c2 = (1 - m) * s2`` (so the estimates add up to the modelled mixture, as two sources of an
additive mixture must).

Domain (``domain=``):

``"magnitude"`` (default)  the priors generate magnitudes (``|f(z)|``, one channel) that model
                           the mixture's magnitude spectrogram; the estimates take the mixture's
                           phase (Deep Audio Prior's choice, where its losses were designed).
``"complex"``              the priors generate real+imag (two channels) like every other task of
                           paper 1; the mask, one channel, scales both.

Either way the spectrograms are divided by the RMS of the mixture's STFT magnitudes, so every loss
weight below is independent of the clip's level and the target sits on the scale of a freshly
initialised prior's output (mean |f(z)| about 0.1-0.2, mixture mean about 0.1-0.5 after scaling);
the regularisers (smoothness, exclusion) always see the estimates' *magnitudes*.

The loss (:class:`SeparationWeights`, Deep Audio Prior's family; REFERENCE_NOTES "Separation"):

1. ``mixture``: L1 between the modelled and the observed (normalised) mixture spectrogram;
2. ``smoothness``: for each estimate, the mean absolute difference between adjacent time frames
   (summed over the two estimates);
3. ``exclusion``: at 3 scales (2x2 average pooling between scales), finite differences of the two
   estimates along frequency and along time, squashed as ``2 sigmoid(g) - 1``; per scale and axis
   ``mean(g1^2 * g2^2) ** (1/4)``; the term is the mean of those 6 values (two sources should not
   have edges at the same places);
4. mask terms: ``binarisation`` = ``mean(m * (1 - m))`` (0 for a binary mask), switched on only
   after ``binarise_from`` (a fraction) of the iterations, as Deep Audio Prior did late in its
   optimisation; ``coverage`` = ``relu(c - mean(m)) + relu(mean(m) - (1 - c))`` with
   ``c = coverage_min``, zero unless the mask as a whole drifts to all-0 or all-1.

Collapse guard: at iteration ``ceil(collapse_check * iterations)`` (only when that is at least
``collapse_min_iteration``; tiny budgets are never checked) the energy of each decoded estimate is
compared with the energy of the modelled mixture (the sum of the two estimates); an estimate below
``collapse_db`` dB of it has collapsed, and the fit is stopped and restarted from new seeds
(networks and latents), at most ``max_restarts`` times. The reference is the *modelled* mixture,
not the observed one, because early in a fit both estimates are still far below the observation's
level (measured with reduced-width priors: about -30 dB after 25 iterations), which is under-fitting,
not collapse.
``FitResult.extra["restarts"]`` counts the restarts, ``extra["collapsed"]`` says whether the kept
fit still collapsed, ``extra["source_levels_db"]`` gives both levels at the check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dap import metrics
from dap.audio import check_audio, istft, stft
from dap.errors import DapError
from dap.fit import FitConfig, FitResult, LatentPrior, fit
from dap.priors import build_prior

DOMAINS = ("magnitude", "complex")
#: Source names of Table 4, in the order of the references.
SOURCES = ("piano", "drums")
#: Metrics per source (Table 4, plus waveform SNR).
SEPARATION_METRICS = ("SDR", "SIR", "Spec. SNR", "Env. Dist.", "SNR")
_EPS = 1e-12


class SeparationError(DapError, ValueError):
    """Bad separation settings or signals (length mismatch, unknown domain...)."""


@dataclass
class SeparationWeights:
    """Weights of the separation loss terms (see the module doc); all in normalised units."""

    mixture: float = 1.0
    smoothness: float = 0.05
    exclusion: float = 0.1
    binarisation: float = 0.01
    binarise_from: float = 0.5   # fraction of the iterations after which binarisation is on
    coverage: float = 1.0
    coverage_min: float = 0.1    # the mask's mean is kept inside [coverage_min, 1 - coverage_min]

    def as_settings(self) -> dict:
        """The weights as a flat dict (part of a fit's id)."""
        return {f"w_{k}": v for k, v in asdict(self).items()}


@dataclass
class CollapseGuard:
    """When a fit counts as collapsed, and how often it is restarted."""

    collapse_db: float = -35.0        # an estimate this far below the modelled mixture has collapsed
    collapse_check: float = 0.25      # check at this fraction of the iterations
    collapse_min_iteration: int = 20  # ... but never before this iteration (no check in tiny runs)
    max_restarts: int = 2

    def check_iteration(self, iterations: int) -> int | None:
        """The iteration at which to check, or None when the budget is too small to check."""
        it = max(1, math.ceil(self.collapse_check * iterations))
        return it if self.collapse_min_iteration <= it <= iterations else None


# ----------------------------------------------------------------------------- mixtures
def make_mixture(piano: np.ndarray, drums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak-normalise each source to 1 and sum them (no further gain: the mixture may peak above 1).

    piano, drums: ``(L,)``. Returns ``(mixture (L,), references (2, L))`` with the references in
    :data:`SOURCES` order.
    """
    from dap.audio import peak_normalise

    p, d = peak_normalise(piano, name="piano source"), peak_normalise(drums, name="drum source")
    if p.shape != d.shape:
        raise SeparationError(f"piano has {p.shape[0]} samples, drums {d.shape[0]}; they must match")
    refs = np.stack([p, d]).astype(np.float32)
    return refs.sum(axis=0), refs


# ----------------------------------------------------------------------------- the generator
def _sub_seed(seed: int, *keys) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] & 0x7FFFFFFF)


class SeparationGenerator(nn.Module):
    """Three :class:`dap.fit.LatentPrior` s driven as one generator by :func:`dap.fit.fit`.

    ``forward()`` returns the three outputs packed along channels, ``(1, 2C + 1, F, T)`` =
    ``[s1, s2, m]`` with ``s1, s2`` ``(1, C, F, T)`` (C = 1 magnitudes >= 0, or C = 2 real/imag)
    and ``m`` ``(1, 1, F, T)`` in [0, 1]; :func:`unpack` splits them. (One tensor rather than a
    tuple because the engine detaches and converts the prediction as a single tensor.) Each prior
    has its own latent z ``shape`` ``(1, 2, F, T)`` drawn from ``seed``.
    """

    def __init__(self, design: str, shape: tuple[int, ...], seed: int, domain: str = "magnitude",
                 prior_opts: dict | None = None):
        super().__init__()
        if domain not in DOMAINS:
            raise SeparationError(f"domain must be one of {DOMAINS}, not {domain!r}")
        self.domain = domain
        opts = dict(prior_opts or {})
        channels = 1 if domain == "magnitude" else 2
        torch.manual_seed(seed)  # network initialisation (three different draws, in order)
        self.source1 = LatentPrior(build_prior(design, out_channels=channels, **opts), shape, _sub_seed(seed, 1))
        self.source2 = LatentPrior(build_prior(design, out_channels=channels, **opts), shape, _sub_seed(seed, 2))
        self.mask = LatentPrior(build_prior(design, out_channels=1, **opts), shape, _sub_seed(seed, 3))

    def forward(self):
        s1, s2 = self.source1(), self.source2()
        if self.domain == "magnitude":
            s1, s2 = s1.abs(), s2.abs()  # abs (not softplus/ReLU): can reach 0, never a dead gradient
        return torch.cat([s1, s2, torch.sigmoid(self.mask())], dim=1)


def unpack(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 2C + 1, F, T)`` from :class:`SeparationGenerator` -> ``(s1, s2, m)``."""
    c = (pred.shape[1] - 1) // 2
    if pred.shape[1] != 2 * c + 1 or c not in (1, 2):
        raise SeparationError(f"expected (B, 3 or 5, F, T) packed [s1, s2, m], got {tuple(pred.shape)}")
    return pred[:, :c], pred[:, c:2 * c], pred[:, 2 * c:]


def components(s1: torch.Tensor, s2: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two source estimates ``(m * s1, (1 - m) * s2)``; ``m`` broadcasts over channels."""
    return m * s1, (1 - m) * s2


def magnitude(c: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, T)`` -> magnitudes ``(B, 1, F, T)``: itself for C = 1, ``sqrt(re^2 + im^2)`` for C = 2."""
    if c.shape[1] == 1:
        return c
    return torch.sqrt(c[:, :1] ** 2 + c[:, 1:2] ** 2 + _EPS)


# ----------------------------------------------------------------------------- loss terms
def temporal_smoothness(a: torch.Tensor) -> torch.Tensor:
    """Mean ``|a[..., t+1] - a[..., t]|`` over all entries of ``a`` ``(B, C, F, T)``; 0 when constant in time."""
    return torch.mean(torch.abs(a[..., 1:] - a[..., :-1]))


def exclusion_loss(a1: torch.Tensor, a2: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Deep Audio Prior's exclusion loss of two magnitude maps ``(B, 1, F, T)``.

    At each of ``scales`` scales (2x2 average pooling between them), per axis (frequency, time):
    ``g = 2 sigmoid(diff) - 1`` of each map's finite differences, and ``mean(g1^2 g2^2) ** 0.25``.
    Returns the mean over scales and axes. 0 when the two maps never change at the same place; > 0
    when they share edges (e.g. identical non-constant maps).
    """
    terms = []
    for level in range(scales):
        if level:
            if min(a1.shape[-2:]) < 2:
                break
            a1, a2 = F.avg_pool2d(a1, 2), F.avg_pool2d(a2, 2)
        for dim in (-2, -1):
            g1 = 2 * torch.sigmoid(torch.diff(a1, dim=dim)) - 1
            g2 = 2 * torch.sigmoid(torch.diff(a2, dim=dim)) - 1
            # a tiny floor keeps the 4th root differentiable at 0 without biasing it: a floor of
            # 1e-12 would already add 1e-3 to every term, comparable to a real shared edge
            terms.append((torch.mean(g1 ** 2 * g2 ** 2) + 1e-24) ** 0.25)
    return torch.stack(terms).mean()


def binarisation_loss(m: torch.Tensor) -> torch.Tensor:
    """``mean(m (1 - m))``: 0 for a binary mask, 0.25 for a mask of 0.5 everywhere."""
    return torch.mean(m * (1 - m))


def coverage_loss(m: torch.Tensor, low: float = 0.1) -> torch.Tensor:
    """``relu(low - mean m) + relu(mean m - (1 - low))``: 0 unless the mask is almost all 0 or all 1."""
    mean = m.mean()
    return F.relu(low - mean) + F.relu(mean - (1 - low))


def separation_loss(s1: torch.Tensor, s2: torch.Tensor, m: torch.Tensor, target: torch.Tensor,
                    weights: SeparationWeights, binarise: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss and its unweighted terms (for logging).

    s1, s2: ``(1, C, F, T)``; m: ``(1, 1, F, T)``; target: the normalised observed mixture
    ``(1, C, F, T)`` (magnitude for C = 1, real/imag for C = 2). ``binarise`` switches the
    binarisation term on.
    """
    c1, c2 = components(s1, s2, m)
    a1, a2 = magnitude(c1), magnitude(c2)
    terms = {"mixture": torch.mean(torch.abs(c1 + c2 - target)),
             "smoothness": temporal_smoothness(a1) + temporal_smoothness(a2),
             "exclusion": exclusion_loss(a1, a2),
             "binarisation": binarisation_loss(m),
             "coverage": coverage_loss(m, weights.coverage_min)}
    total = (weights.mixture * terms["mixture"] + weights.smoothness * terms["smoothness"]
             + weights.exclusion * terms["exclusion"] + weights.coverage * terms["coverage"])
    if binarise:
        total = total + weights.binarisation * terms["binarisation"]
    return total, {k: float(v.detach()) for k, v in terms.items()}


# ----------------------------------------------------------------------------- the fit
def source_levels_db(estimates: np.ndarray, mixture: np.ndarray | None = None) -> np.ndarray:
    """Energy of each estimate ``(S, L)`` relative to ``mixture`` ``(L,)`` (default: the sum of the
    estimates, i.e. the modelled mixture), in dB ``(S,)``."""
    if mixture is None:
        mixture = np.sum(np.asarray(estimates, np.float64), axis=0)
    mix_e = float(np.sum(np.asarray(mixture, np.float64) ** 2))
    est_e = np.sum(np.asarray(estimates, np.float64) ** 2, axis=-1)
    return 10 * np.log10(np.maximum(est_e, 1e-30) / max(mix_e, 1e-30))


def restore(mixture: np.ndarray, design: str = "dilated_exp_dense", config: FitConfig | None = None,
            seed: int = 0, references: np.ndarray | None = None, domain: str = "magnitude",
            weights: SeparationWeights | None = None, guard: CollapseGuard | None = None,
            mismatched_istft: bool = False, prior_opts: dict | None = None, **fit_kwargs) -> FitResult:
    """Separate one mixture ``(L,)`` into two sources with three deep priors.

    references: ``(2, L)`` clean sources (optional); with them the engine tracks the mean waveform
    SNR of the best permutation (``snr``, the oracle rule's score). Outputs of every rule are
    ``(2, L)`` in the priors' order (not matched to the references: see :func:`evaluate`).
    ``extra``: ``restarts``, ``collapsed``, ``source_levels_db`` ("a;b", at the check) and the last
    unweighted loss terms ``loss_<term>``.
    """
    mixture = check_audio(mixture, "mixture")
    length = mixture.shape[0]
    if domain not in DOMAINS:
        raise SeparationError(f"domain must be one of {DOMAINS}, not {domain!r}")
    weights, guard, config = weights or SeparationWeights(), guard or CollapseGuard(), config or FitConfig()
    X = stft(mixture)[None]  # (1, 2, F, T)
    mag = torch.sqrt(X[:, :1] ** 2 + X[:, 1:] ** 2)
    scale = float(torch.sqrt(torch.mean(mag ** 2)))  # RMS magnitude (see the module doc)
    phase = X / (mag + _EPS)  # unit phasors, (1, 2, F, T)
    target = (mag if domain == "magnitude" else X) / scale

    track = None
    if references is not None:
        refs = np.asarray(references, dtype=np.float32)
        if refs.shape != (2, length):
            raise SeparationError(f"references must be (2, {length}), got {refs.shape}")

        def track(wav: np.ndarray) -> dict[str, float]:
            snrs = [[metrics.snr(refs[i], wav[j]) for j in range(2)] for i in range(2)]
            return {"snr": max((snrs[0][0] + snrs[1][1]) / 2, (snrs[0][1] + snrs[1][0]) / 2)}

    check_at = guard.check_iteration(config.iterations)
    user_on_step, user_stop = fit_kwargs.pop("on_step", None), fit_kwargs.pop("stop", None)
    total_seconds, restarts = 0.0, 0
    while True:
        attempt_seed = seed if restarts == 0 else _sub_seed(seed, 100 + restarts)
        generator = SeparationGenerator(design, tuple(X.shape), attempt_seed, domain, prior_opts)
        state = {"step": 0, "collapsed": False, "user_stopped": False, "levels": "", "terms": {}}
        cache: dict = {}

        def loss_fn(pred, state=state, cache=cache):
            s1, s2, m = unpack(pred)
            if "target" not in cache:
                cache["target"] = target.to(s1.device)
            state["step"] += 1
            binarise = state["step"] > weights.binarise_from * config.iterations
            loss, state["terms"] = separation_loss(s1, s2, m, cache["target"], weights, binarise)
            return loss

        def decode(pred, cache=cache):
            s1, s2, m = unpack(pred)
            c1, c2 = components(s1, s2, m)
            spec = torch.cat([c1, c2]) * scale  # (2, C, F, T)
            if domain == "magnitude":
                if "phase" not in cache:
                    cache["phase"] = phase.to(spec.device)
                spec = spec * cache["phase"]  # magnitude x mixture phase -> (2, 2, F, T)
            return istft(spec, length, mismatched=mismatched_istft)  # (2, L)

        def on_step(it, info, state=state):
            if check_at is not None and it >= check_at and not state["levels"]:
                levels = source_levels_db(info["waveforms"])  # against the modelled mixture
                state["levels"] = ";".join(f"{v:.1f}" for v in levels)
                state["collapsed"] = bool(np.min(levels) < guard.collapse_db)
            if user_on_step is not None:
                user_on_step(it, info)

        may_restart = restarts < guard.max_restarts  # the last allowed attempt always runs to the end

        def stop(state=state, may_restart=may_restart):
            if user_stop is not None and user_stop():
                state["user_stopped"] = True  # a person asked to stop: never restart
                return True
            return may_restart and state["collapsed"]

        result = fit(generator, loss_fn, decode, config, track=track, on_step=on_step, stop=stop, **fit_kwargs)
        total_seconds += result.seconds
        if not (state["collapsed"] and may_restart and result.ok and not state["user_stopped"]):
            break
        restarts += 1
    result.seconds = total_seconds
    result.extra.update({"restarts": restarts, "collapsed": state["collapsed"], "domain": domain,
                         "source_levels_db": state["levels"],
                         **{f"loss_{k}": round(v, 6) for k, v in state["terms"].items()}})
    return result


# ----------------------------------------------------------------------------- evaluation
def evaluate(references: np.ndarray, estimates: np.ndarray, names=SOURCES) -> dict[str, float]:
    """Table 4 metrics per source, after matching estimates to references by the best permutation.

    references, estimates: ``(2, L)``. Keys ``"<source>|<metric>"`` for metric in
    :data:`SEPARATION_METRICS`: BSS Eval v4 SDR and SIR with one window over the whole clip
    (NaN when an estimate is all zeros or BSS Eval is undefined), spectral SNR, envelope distance
    and waveform SNR; plus ``"permutation"`` (0 = identity, 1 = swapped).
    """
    refs = np.asarray(references, dtype=np.float64)
    ests = np.asarray(estimates, dtype=np.float64)
    if refs.shape != ests.shape or refs.shape[0] != len(names):
        raise SeparationError(f"references {refs.shape} and estimates {ests.shape} must both be ({len(names)}, L)")
    perm = metrics.best_permutation(refs, ests)
    ests = ests[list(perm)]
    try:
        bss = metrics.bss_eval(refs, ests, window=None, on_silent="nan")
    except metrics.UndefinedMetric:
        bss = {"SDR": np.full(len(names), np.nan), "SIR": np.full(len(names), np.nan)}
    out: dict[str, float] = {}
    for i, name in enumerate(names):
        out[f"{name}|SDR"] = float(bss["SDR"][i])
        out[f"{name}|SIR"] = float(bss["SIR"][i])
        out[f"{name}|Spec. SNR"] = metrics.spectral_snr(refs[i], ests[i])
        out[f"{name}|Env. Dist."] = metrics.envelope_distance(refs[i], ests[i])
        out[f"{name}|SNR"] = metrics.snr(refs[i], ests[i])
    out["permutation"] = float(perm != tuple(range(len(names))))
    return out
