"""Inpainting (paper 1, section 4.2; Table 3).

Corruption: zero *gaps* over all frequencies, each 0.1-0.25 s long (the paper's range). The paper
does not say how many gaps a clip gets; here the count is proportional to the clip's length,
``round(gaps_per_second * seconds)`` with ``gaps_per_second = 1`` by default (one gap in a 1.024 s
digit, two in a 2.048 s speech clip), at least one. Gaps do not overlap, are separated by at least
``min_separation_s`` and keep ``margin_s`` away from both clip edges, so every gap has observed
context on both sides. Durations and positions are drawn from one seed (:func:`draw_gaps`).

A mask has two views (:class:`GapMask`):

* sample spans ``[(start, end), ...]`` (end exclusive): the observed waveform is the clean clip
  with these samples set to zero (:func:`apply_gaps`);
* a frame mask ``(1, 1, 1, T)`` over the paper's STFT (hop 64, ``T = L // 64``), 1 = observed,
  0 = masked, broadcast over both real/imag channels and all frequency bins. Rule ``"centre"``
  (default): frame ``t`` is masked when its centre sample ``t * 64`` lies inside a gap. Rule
  ``"window"``: masked when any sample of its 1023-point window lies inside a gap, so every
  observed frame sees only observed samples (stricter, masks about 16 more frames per gap).

With the centre rule the observed frames next to a gap see its zeroed samples through their
windows: the observation there is the STFT of the zeroed waveform, as a receiver that lost those
samples would have it. The loss (:func:`masked_mse`) is the paper's ``MSE(m * f(z), m * X_hat)``
normalised by the number of *observed* entries, i.e. the mean squared error over the observed
time-frequency entries only, so its scale does not depend on how much of the clip is masked.
The fit itself is :func:`dap.engine.fit.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dap import metrics
from dap.core.audio import HOP, N_FFT, SAMPLE_RATE, check_audio, istft, num_frames, stft
from dap.core.errors import DapError
from dap.engine.fit import FitConfig, FitResult, LatentPrior, fit
from dap.priors import build_prior
from dap.core.seeds import stream
from dap.tasks.registry import Observation, Task, register_task

#: The paper's gap durations (seconds).
GAP_MIN_S = 0.1
GAP_MAX_S = 0.25
#: Gaps per second of audio (our choice; the paper gives no count).
GAPS_PER_SECOND = 1.0
#: Observed context kept at each clip edge and between two gaps (seconds; our choice).
MARGIN_S = 0.05
MIN_SEPARATION_S = 0.05
FRAME_RULES = ("centre", "window")

#: Table 3 metrics and the ones added here (gap-only views, waveform SNR).
GAP_METRIC_NOTE = ("'(gaps)' metrics are computed on the concatenation of the masked spans only "
                   "(reference and estimate cut at the same samples, joined in time order); NaN "
                   "when the reference is silent in every gap")


class MaskError(DapError, ValueError):
    """The gaps asked for cannot be placed in the clip, or a mask does not fit its signal."""


@dataclass(frozen=True)
class GapMask:
    """Zeroed spans of a clip of ``length`` samples: ``spans = ((start, end), ...)`` sorted,
    end exclusive, non-overlapping."""

    length: int
    spans: tuple[tuple[int, int], ...]

    def __post_init__(self):
        prev = 0
        for start, end in self.spans:
            if not (prev <= start < end <= self.length):
                raise MaskError(f"gap spans {self.spans} must be sorted, non-overlapping and inside "
                                f"[0, {self.length})")
            prev = end

    @property
    def n_gaps(self) -> int:
        return len(self.spans)

    @property
    def durations(self) -> np.ndarray:
        """Gap lengths in samples ``(n_gaps,)``."""
        return np.array([e - s for s, e in self.spans], dtype=int)

    def observed(self) -> np.ndarray:
        """Sample mask ``(L,)`` bool: True where the sample is observed."""
        keep = np.ones(self.length, dtype=bool)
        for start, end in self.spans:
            keep[start:end] = False
        return keep

    @property
    def masked_fraction(self) -> float:
        """Fraction of the clip's samples inside gaps."""
        return float(self.durations.sum() / self.length)

    def frame_mask(self, rule: str = "centre", hop: int = HOP, n_fft: int = N_FFT) -> torch.Tensor:
        """STFT-frame mask ``(1, 1, 1, T)`` float32, 1 = observed, 0 = masked (see module doc).

        ``T = L // hop`` as in :func:`dap.core.audio.stft`; frame ``t`` is centred on sample ``t * hop``.
        """
        if rule not in FRAME_RULES:
            raise MaskError(f"frame rule must be one of {FRAME_RULES}, not {rule!r}")
        centres = np.arange(num_frames(self.length, hop)) * hop
        half = n_fft // 2 if rule == "window" else 0  # the window spans centre +- 511 samples
        masked = np.zeros(centres.shape, dtype=bool)
        for start, end in self.spans:
            masked |= (centres + half >= start) & (centres - half < end)
        return torch.from_numpy((~masked).astype(np.float32)).reshape(1, 1, 1, -1)

    def to_string(self) -> str:
        """``"start-end;start-end"`` in samples: how a mask is stored with its result rows."""
        return ";".join(f"{s}-{e}" for s, e in self.spans)

    @classmethod
    def from_string(cls, text: str, length: int) -> "GapMask":
        """Inverse of :meth:`to_string`."""
        spans = []
        for part in filter(None, str(text).split(";")):
            try:
                start, end = (int(v) for v in part.split("-"))
            except ValueError:
                raise MaskError(f"cannot read gap span {part!r} (expected 'start-end' in samples)") from None
            spans.append((start, end))
        return cls(length, tuple(spans))


def gap_count(length: int, gaps_per_second: float = GAPS_PER_SECOND, sr: int = SAMPLE_RATE) -> int:
    """Gaps in a clip of ``length`` samples: ``max(1, round(gaps_per_second * length / sr))``."""
    return max(1, int(round(gaps_per_second * length / sr)))


def draw_gaps(length: int, seed: int = 0, gaps_per_second: float = GAPS_PER_SECOND,
              min_s: float = GAP_MIN_S, max_s: float = GAP_MAX_S, margin_s: float = MARGIN_S,
              min_separation_s: float = MIN_SEPARATION_S, n_gaps: int | None = None,
              sr: int = SAMPLE_RATE) -> GapMask:
    """Random gaps for a clip of ``length`` samples, reproducible from ``seed``.

    Durations are uniform integers in ``[round(min_s * sr), round(max_s * sr)]`` samples. Positions
    are drawn without rejection: the free samples (clip length minus gaps, edge margins and minimum
    separations) are split into ``n_gaps + 1`` slacks by sorted uniform cut points, which places the
    gaps uniformly among all valid layouts with the drawn durations. ``n_gaps`` defaults to
    :func:`gap_count`.
    """
    n = gap_count(length, gaps_per_second, sr) if n_gaps is None else int(n_gaps)
    lo, hi = int(round(min_s * sr)), int(round(max_s * sr))
    if n < 1 or lo < 1 or hi < lo:
        raise MaskError(f"need n_gaps >= 1 and 0 < min_s <= max_s; got n={n}, min_s={min_s}, max_s={max_s}")
    margin, sep = int(round(margin_s * sr)), int(round(min_separation_s * sr))
    rng = stream(seed, 4)
    durations = rng.integers(lo, hi + 1, size=n)
    slack = length - 2 * margin - (n - 1) * sep - int(durations.sum())
    if slack < 0:
        raise MaskError(f"{n} gaps of {durations.tolist()} samples with margins of {margin} and separations "
                        f"of {sep} do not fit in a clip of {length} samples; lower gaps_per_second")
    cuts = np.sort(rng.integers(0, slack + 1, size=n))
    slacks = np.diff(np.concatenate([[0], cuts]))  # slack before each gap; the rest goes after the last
    spans, pos = [], margin
    for d, s in zip(durations, slacks):
        start = pos + int(s)
        spans.append((start, start + int(d)))
        pos = start + int(d) + sep
    return GapMask(length, tuple(spans))


def apply_gaps(clean: np.ndarray, mask: GapMask) -> np.ndarray:
    """The observation: ``clean`` ``(L,)`` with the gap samples set to zero, ``(L,)`` float32."""
    clean = check_audio(clean, "clean clip")
    if clean.shape[0] != mask.length:
        raise MaskError(f"mask is for {mask.length} samples but the clip has {clean.shape[0]}")
    return np.where(mask.observed(), clean, 0.0).astype(np.float32)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum((m * (pred - target))^2) / (number of observed entries)``.

    pred, target: ``(B, C, F, T)``; mask: broadcastable to them (e.g. ``(1, 1, 1, T)``), 1 observed,
    0 masked. Masked entries contribute nothing, whatever their values; the result is the mean
    squared error over the observed entries (the mask broadcast to the full shape counts them).
    """
    m = mask.expand_as(pred)
    n_obs = m.sum()
    if float(n_obs) == 0:
        raise MaskError("the mask hides every entry: nothing is observed to fit")
    return torch.sum((m * (pred - target)) ** 2) / n_obs


def restore(observed: np.ndarray, mask: GapMask, design: str,
            config: FitConfig, seed: int = 0, clean: np.ndarray | None = None,
            frame_rule: str = "centre", mismatched_istft: bool = False, prior_opts: dict | None = None,
            **fit_kwargs) -> FitResult:
    """Fit a deep prior to the observed (gapped) clip and fill the gaps.

    ``design`` one of :data:`dap.priors.ALL_DESIGNS`; ``config`` the engine's settings, required
    (:func:`dap.studies.fit_config` gives a profile's) so that no fit runs the paper's budget by accident.
    observed, clean: ``(L,)`` with ``L`` a multiple of 256 samples; ``mask`` the gaps of ``observed``.
    Loss :func:`masked_mse` between the prior's output and the observed STFT under the frame mask.
    With ``clean`` the engine tracks the whole-clip SNR (the oracle rule's score, as for denoising)
    and the SNR inside the gaps (``snr_gaps``, history only). Returns :class:`dap.engine.fit.FitResult`
    with outputs ``(1, L)`` and ``extra = {"gaps": "start-end;...", "n_gaps", "masked_fraction",
    "masked_frames"}``.
    """
    observed = check_audio(observed, "observed clip", allow_silent=True)
    length = observed.shape[0]
    if length != mask.length:
        raise MaskError(f"mask is for {mask.length} samples but the observed clip has {length}")
    target = stft(observed)[None]  # (1, 2, F, T)
    frames = mask.frame_mask(frame_rule)  # (1, 1, 1, T)
    if frames.shape[-1] != target.shape[-1]:
        raise MaskError(f"frame mask has {frames.shape[-1]} frames, the STFT {target.shape[-1]}")
    torch.manual_seed(seed)  # network initialisation
    generator = LatentPrior(build_prior(design, **(prior_opts or {})), tuple(target.shape), seed)
    cache: dict = {}

    def loss_fn(pred: torch.Tensor) -> torch.Tensor:
        """Masked MSE between the prediction and the observed STFT over the observed frames.

        Args:
            pred: ``(1, 2, F, T)``.

        Returns:
            A scalar ``()``.
        """
        if "target" not in cache:
            cache["target"], cache["mask"] = target.to(pred.device), frames.to(pred.device)
        return masked_mse(pred, cache["target"], cache["mask"])

    def decode(pred: torch.Tensor) -> torch.Tensor:
        """The waveform of a prediction.

        Args:
            pred: ``(1, 2, F, T)``.

        Returns:
            ``(1, L)``.
        """
        return istft(pred, length, mismatched=mismatched_istft)  # (1, L)

    track = None
    if clean is not None:
        clean = check_audio(clean, "clean reference")
        gap_ref = _gap_signal(clean, mask)
        gap_ok = bool(np.any(gap_ref))

        def track(wav: np.ndarray) -> dict[str, float]:
            gap_snr = metrics.snr(gap_ref, _gap_signal(wav[0], mask)) if gap_ok else float("nan")
            return {"snr": metrics.snr(clean, wav[0]), "snr_gaps": gap_snr}

    result = fit(generator, loss_fn, decode, config, track=track, **fit_kwargs)
    result.extra.update(describe_mask(mask, frame_rule))
    return result


def describe_mask(mask: GapMask, frame_rule: str = "centre") -> dict:
    """What is stored with every result row of an inpainting fit (the mask itself, as text)."""
    frames = mask.frame_mask(frame_rule)
    return {"gaps": mask.to_string(), "n_gaps": mask.n_gaps, "masked_fraction": round(mask.masked_fraction, 4),
            "masked_frames": int((frames == 0).sum())}


def _gap_signal(x: np.ndarray, mask: GapMask) -> np.ndarray:
    """The samples of ``x`` ``(L,)`` inside the gaps, concatenated in time order."""
    x = np.asarray(x).reshape(-1)
    return np.concatenate([x[s:e] for s, e in mask.spans])


def evaluate(clean: np.ndarray, estimate: np.ndarray, mask: GapMask) -> dict[str, float]:
    """Table 3 metrics of one inpainted clip, plus gap-only views.

    ``"Spec. SNR"``, ``"Env. Dist."`` (the paper's numbers) and ``"SNR"`` on the whole clip;
    ``"Spec. SNR (gaps)"``, ``"Env. Dist. (gaps)"``, ``"SNR (gaps)"`` on the gap samples only
    (:data:`GAP_METRIC_NOTE`). clean, estimate: ``(L,)`` (or ``(1, L)``).
    """
    estimate = np.asarray(estimate).reshape(-1)
    out = {"Spec. SNR": metrics.spectral_snr(clean, estimate),
           "Env. Dist.": metrics.envelope_distance(clean, estimate),
           "SNR": metrics.snr(clean, estimate)}
    ref_g, est_g = _gap_signal(clean, mask), _gap_signal(estimate, mask)
    silent = not np.any(ref_g)
    out["Spec. SNR (gaps)"] = float("nan") if silent else metrics.spectral_snr(ref_g, est_g)
    out["Env. Dist. (gaps)"] = metrics.envelope_distance(ref_g, est_g)
    out["SNR (gaps)"] = float("nan") if silent else metrics.snr(ref_g, est_g)
    return out


def corrupt(clean: np.ndarray, seed: int) -> Observation:
    """The registered corruption: :func:`draw_gaps` with the paper's durations, ``(L,)`` -> the gapped
    clip, with the mask in ``context`` and its description in ``extra``."""
    mask = draw_gaps(len(clean), seed)
    return Observation(apply_gaps(clean, mask), context={"mask": mask}, extra=describe_mask(mask))


def _restore_observed(observed: np.ndarray, design: str, config: FitConfig, mask: GapMask, **kwargs) -> FitResult:
    """:func:`restore` in the argument order of :class:`dap.tasks.registry.Task`."""
    return restore(observed, mask, design, config, **kwargs)


register_task(Task("inpaint", corrupt, _restore_observed, evaluate,
                   metrics=("Spec. SNR", "Env. Dist.", "SNR", "Spec. SNR (gaps)", "Env. Dist. (gaps)", "SNR (gaps)"),
                   description="silent gaps filled by fitting the observed STFT frames (Table 3)"))
