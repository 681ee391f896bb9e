"""The loss of the two-source separation (:mod:`dap.tasks.separate`): its weights, the two estimates
``M_i * s_i`` and each term (mixture fit, smoothness of the raw sources, Deep Audio Prior's
exclusion, presence of both sources, mask binarisation). Why each term: docs/separation.md.

Shapes: raw sources ``s1, s2`` ``(1, C, F, T)`` (C = 1 magnitudes, C = 2 real/imag), time masks
``m1, m2`` ``(1, 1, F, T)``, magnitude maps ``(B, 1, F, T)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

_EPS = 1e-12


@dataclass
class SeparationWeights:
    """Weights of the separation loss terms (see the module doc); all in normalised units."""

    mixture: float = 1.0
    # The mixture term: "l2" (MSE, as paper 1's other tasks) or "l1" (Deep Audio Prior's). With L1 the
    # silent answer is nearly optimal on sparse spectrograms (docs/separation.md, "The data term").
    data_norm: str = "l2"
    # smoothness 1.0 (as the data term) and a presence floor of 0.3: with 0.5 / 0.1 the worse estimate beat
    # the best trivial answer by +3 dB SIR in 2 of 9 small-prior fits, with 1.0 / 0.3 in 6 of 9
    # (docs/separation.md, "Loss weights measured against the issue-14 bar")
    smoothness: float = 1.0
    exclusion: float = 0.1
    exclusion_from: float = 0.0  # fraction of the iterations after which exclusion is on
    presence: float = 1.0
    # each estimate should carry at least this share of the estimates' energy: 0.3 lets the estimates'
    # energy ratio go down to 0.3 / 0.7 = -3.7 dB around the study's 0 dB mixtures (0.1: -9.5 dB)
    presence_min: float = 0.3
    binarisation: float = 0.0
    binarise_from: float = 0.5   # fraction of the iterations after which binarisation is on

    def as_settings(self) -> dict:
        """The weights as a flat dict (part of a fit's id)."""
        return {f"w_{k}": v for k, v in asdict(self).items()}


def components(s1: torch.Tensor, s2: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two source estimates ``(M1 * s1, M2 * s2)``; the masks broadcast over channels."""
    return m1 * s1, m2 * s2


def magnitude(c: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, T)`` -> magnitudes ``(B, 1, F, T)``: itself for C = 1, ``sqrt(re^2 + im^2)`` for C = 2."""
    if c.shape[1] == 1:
        return c
    return torch.sqrt(c[:, :1] ** 2 + c[:, 1:2] ** 2 + _EPS)


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


def presence_loss(a1: torch.Tensor, a2: torch.Tensor, share_min: float = 0.1) -> torch.Tensor:
    """``sum_i relu(share_min - E_i / (E_1 + E_2))`` with ``E_i`` the energy of magnitude map ``a_i``
    ``(B, 1, F, T)``: 0 while each source carries at least ``share_min`` of the energy, growing as
    one of them empties (the two-source premise: both are present in the mixture)."""
    e1, e2 = torch.sum(a1 ** 2), torch.sum(a2 ** 2)
    total = e1 + e2 + _EPS
    return F.relu(share_min - e1 / total) + F.relu(share_min - e2 / total)


def separation_loss(s1: torch.Tensor, s2: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, target: torch.Tensor,
                    weights: SeparationWeights, binarise: bool = False,
                    exclude: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss and its unweighted terms (for logging).

    s1, s2: raw sources ``(1, C, F, T)``; m1, m2: time masks ``(1, 1, F, T)``; target: the
    normalised observed mixture ``(1, C, F, T)`` (magnitude for C = 1, real/imag for C = 2).
    Smoothness acts on the *raw* sources: on the estimates it could never favour a split (a sum
    is at most as rough as its parts), while a raw source may stay smooth and let its time mask
    carry the onsets. ``binarise`` switches the binarisation term on, ``exclude`` the exclusion term
    (optionally only after ``exclusion_from`` of the iterations).
    """
    c1, c2 = components(s1, s2, m1, m2)
    a1, a2 = magnitude(c1), magnitude(c2)
    terms = {"mixture": torch.mean((c1 + c2 - target) ** 2) if weights.data_norm == "l2" else torch.mean(torch.abs(c1 + c2 - target)),
             "smoothness": temporal_smoothness(magnitude(s1)) + temporal_smoothness(magnitude(s2)),
             "exclusion": exclusion_loss(a1, a2),
             "presence": presence_loss(a1, a2, weights.presence_min),
             "binarisation": binarisation_loss(m1) + binarisation_loss(m2)}
    total = (weights.mixture * terms["mixture"] + weights.smoothness * terms["smoothness"]
             + weights.presence * terms["presence"])
    if exclude:
        total = total + weights.exclusion * terms["exclusion"]
    if binarise:
        total = total + weights.binarisation * terms["binarisation"]
    return total, {k: float(v.detach()) for k, v in terms.items()}
