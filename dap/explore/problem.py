"""The corrupted clip to restore (:class:`Problem`): noise or gaps added to the loudest excerpt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dap import metrics
from dap.explore.clips import loudest_excerpt
from dap.explore.choices import Choices
from dap.tasks import denoise, inpaint


@dataclass
class Problem:
    """One corrupted clip to restore.

    clean: ``(L,)`` peak-normalised reference, or None (fitting the clip as it is); observed:
    ``(L,)`` what the prior is fitted to; mask: the gaps (inpainting) or None; label: where the
    clip comes from.
    """

    clean: np.ndarray | None
    observed: np.ndarray
    mask: inpaint.GapMask | None
    label: str
    task: str

    @property
    def length(self) -> int:
        return int(self.observed.shape[0])

    @property
    def input_snr(self) -> float:
        """SNR of the observation against the clean clip (dB); NaN without a reference."""
        return metrics.snr(self.clean, self.observed) if self.clean is not None else float("nan")

    @property
    def score_key(self) -> str:
        """The history column the curve shows: ``snr``, ``snr_gaps`` (inpainting) or ``loss``."""
        if self.clean is None:
            return "loss"
        return "snr_gaps" if self.task == "inpaint" else "snr"


def make_problem(audio: np.ndarray, settings: Choices, label: str) -> Problem:
    """Crop ``audio`` ``(N,)`` to its loudest ``settings.seconds``, peak-normalise, corrupt.

    Denoising adds ``sigma * N(0, 1)`` noise drawn from ``settings.seed``
    (:func:`dap.tasks.denoise.add_gaussian_noise`); ``sigma = 0`` keeps the clip as it is and drops
    the reference. Inpainting zeroes ``n_gaps`` gaps of ``gap_s`` seconds placed from the seed
    (:func:`dap.tasks.inpaint.draw_gaps`). Raises :class:`AudioError` for a silent excerpt and
    :class:`dap.tasks.inpaint.MaskError` when the gaps do not fit.
    """
    x, where = loudest_excerpt(audio, settings.samples, label)
    if settings.task == "denoise":
        if settings.sigma == 0:
            return Problem(None, x, None, where, "denoise")
        return Problem(x, denoise.add_gaussian_noise(x, settings.sigma, settings.seed), None, where, "denoise")
    mask = inpaint.draw_gaps(x.shape[0], seed=settings.seed, n_gaps=settings.n_gaps, min_s=settings.gap_s,
                             max_s=settings.gap_s)
    return Problem(x, inpaint.apply_gaps(x, mask), mask, where, "inpaint")
