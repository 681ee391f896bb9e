"""Reference levels of paper 2's tables: what a trained model must beat, and what is attainable.

Separation references, all scored by the same metrics as the models (mixture phase, same inverse):

* ``silence`` -- a target estimate of zeros (the trivial solution of an L1 loss on sparse
  targets; perfect PES, worst EPS);
* ``constant-mask`` -- the best *constant per-frequency* mask ``c_f`` times the mixture magnitude,
  fitted on the training examples for the models' own L1 loss (:func:`constant_mask`): a model that
  does not beat it has learned a spectral tilt, not separation;
* ``oracle`` -- the true target magnitude with the mixture phase (the ceiling of a magnitude model).

Alignment references (:func:`alignment_references`), per fragment and side information:

* ``chance`` -- the expected score of an argmax drawn uniformly over the steps the model can attend
  to (content steps when padding is masked, all M otherwise), computed exactly;
* ``proportional`` -- a content-blind aligner that maps frame n to content step
  ``floor(n K / N)`` (K content steps): exact for M2 / A1, approximate after A2 / A3.1's deletions.
  It knows where the padding is, so it is a strong reference for masked models.
"""

from __future__ import annotations

import numpy as np
import torch

from dap.wiass.side_info import SideInfo, alignment_accuracy, segment_accuracy

#: Reference estimates scored beside the trained configurations.
REFERENCES = ("silence", "constant-mask", "oracle")
#: Tolerance (steps) of the near-alignment measure ``alignment_within_k``.
NEAR_STEPS = 3


def constant_mask(train_set, max_items: int = 64) -> torch.Tensor:
    """The per-frequency constant ``c (F,)`` minimising ``sum |target - c * mixture|`` (L1).

    Over the first ``max_items`` examples of ``train_set``: per frequency, the minimiser is the
    median of ``target / mixture`` weighted by the mixture magnitude (bins where the mixture is
    zero cost the same for any c and are skipped).
    """
    items = [train_set[i] for i in range(min(len(train_set), max_items))]
    if not items:
        raise ValueError("no training examples to fit a constant mask on")
    mix = torch.cat([e.mixture_mag for e in items]).numpy().astype(np.float64)  # (n, F)
    tgt = torch.cat([e.target_mag for e in items]).numpy().astype(np.float64)
    out = np.zeros(mix.shape[1])
    for f in range(mix.shape[1]):
        m, t = mix[:, f], tgt[:, f]
        keep = m > 0
        if not keep.any():
            continue
        ratio, weight = t[keep] / m[keep], m[keep]
        order = np.argsort(ratio)
        cum = np.cumsum(weight[order])
        out[f] = ratio[order][np.searchsorted(cum, 0.5 * cum[-1])]
    return torch.from_numpy(out.astype(np.float32))


def reference_magnitude(name: str, example, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The normalised target magnitude ``(N, F)`` of reference ``name`` for one example."""
    if name == "silence":
        return torch.zeros_like(example.target_mag)
    if name == "constant-mask":
        if mask is None:
            raise ValueError("the constant-mask reference needs the fitted mask (constant_mask)")
        return example.mixture_mag * mask[None, :]
    if name == "oracle":
        return example.target_mag.clone()
    raise ValueError(f"unknown reference {name!r}; choose one of {REFERENCES}")


def l1_loss(name: str, dataset, mask: torch.Tensor | None = None) -> float:
    """Mean L1 loss of reference ``name`` over ``dataset`` (same units as the validation loss)."""
    total, count = 0.0, 0
    for i in range(len(dataset)):
        ex = dataset[i]
        total += float((reference_magnitude(name, ex, mask) - ex.target_mag).abs().sum())
        count += ex.target_mag.numel()
    return total / count


def silence_loss(valid_set) -> float:
    """Validation L1 loss of predicting silence (all zeros): the trivial solution a model must beat
    before its output means anything."""
    return l1_loss("silence", valid_set)


def _attendable(side: SideInfo, mask_padding: bool) -> np.ndarray:
    return side.mask if mask_padding else np.ones(side.n_steps, dtype=bool)


def proportional_attention(side: SideInfo) -> np.ndarray:
    """One-hot ``(N, M)`` attention of the content-blind aligner: frame n -> content step
    ``floor(n K / N)`` in content order (padding and A3.2's shift accounted for)."""
    n, m = side.n_frames, side.n_steps
    k = int(side.mask.sum())
    content = (side.left_pad + np.arange(k) + side.shift) % m  # content steps in order
    out = np.zeros((n, m), dtype=np.float32)
    out[np.arange(n), content[np.arange(n) * k // n]] = 1.0
    return out


def within_k(attention, alignment, k: int = NEAR_STEPS) -> float:
    """Fraction of frames with a true step whose argmax is within ``k`` steps of it."""
    alignment = np.asarray(alignment)
    valid = alignment >= 0
    best = np.asarray(attention).argmax(axis=1)
    return float(np.mean(np.abs(best[valid] - alignment[valid]) <= k))


def chance_levels(side: SideInfo, mask_padding: bool = True, k: int = NEAR_STEPS) -> dict:
    """Expected alignment scores of a uniformly random argmax over the attendable steps."""
    allowed = _attendable(side, mask_padding)
    n_allowed = int(allowed.sum())
    out = {}
    seg_hits = [np.sum(allowed & (side.step_segment == s)) for s in side.frame_segment]
    out["segment_accuracy"] = float(np.mean(seg_hits) / n_allowed)
    valid = side.alignment >= 0
    if valid.any():
        steps = np.flatnonzero(allowed)
        truth = side.alignment[valid]
        out["alignment_accuracy"] = float(np.mean(allowed[truth]) / n_allowed)
        near = np.abs(steps[None, :] - truth[:, None]) <= k
        out["alignment_within_k"] = float(near.sum(axis=1).mean() / n_allowed)
    return out


def alignment_scores(attention, side: SideInfo) -> dict:
    """Exact, near (within :data:`NEAR_STEPS`) and segment accuracy of ``attention (N, M)``.

    Segment accuracy is NaN when the fragment's activity is a single run (every argmax on content
    would count: the measure says nothing there)."""
    out = {"segment_accuracy": segment_accuracy(attention, side.frame_segment, side.step_segment)
           if np.unique(side.frame_segment).size > 1 else float("nan")}
    if np.any(side.alignment >= 0):
        out["alignment_accuracy"], out["alignment_distance"] = alignment_accuracy(attention,
                                                                                  side.alignment)
        out["alignment_within_k"] = within_k(attention, side.alignment)
    return out


def alignment_references(side: SideInfo, mask_padding: bool = True) -> dict:
    """``chance_<measure>`` and ``proportional_<measure>`` for one fragment's side information."""
    out = {f"chance_{k}": v for k, v in chance_levels(side, mask_padding).items()}
    if np.unique(side.frame_segment).size <= 1:
        out.pop("chance_segment_accuracy", None)
    prop = alignment_scores(proportional_attention(side), side)
    out.update({f"proportional_{k}": v for k, v in prop.items() if k != "alignment_distance"})
    return out
