"""Window geometry: where the fits go in the file, how long a fit is, and the overlap-add weights."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dap.restore.defaults import FIT_SR, GAP_CONTEXT_S, RESAMPLE_MARGIN, RestoreError


@dataclass(frozen=True)
class WindowPlan:
    """Window geometry in the file's samples for a 16 kHz fit window of ``window16`` samples."""

    sr: int
    window16: int
    overlap16: int

    @property
    def margin(self) -> int:
        """Resampling context on each side, in the file's samples (0 at 16 kHz)."""
        return 0 if self.sr == FIT_SR else int(math.ceil(RESAMPLE_MARGIN * self.sr / FIT_SR))

    @property
    def core(self) -> int:
        """Samples of the file one window restores (the fit window minus the margins)."""
        if self.sr == FIT_SR:
            return self.window16
        return max(1, int(math.floor((self.window16 - 2 * RESAMPLE_MARGIN - 8) * self.sr / FIT_SR)))

    @property
    def overlap(self) -> int:
        return max(1, int(round(self.overlap16 * self.sr / FIT_SR)))

    @property
    def gap_context(self) -> int:
        """Observed samples wanted on each side of an inpainting window's gaps."""
        return min(int(round(GAP_CONTEXT_S * self.sr)), self.core // 4)


def check_window(window16: int, overlap16: int) -> None:
    """RestoreError unless the window is a multiple of 256 samples >= 2048 and the overlap fits."""
    if window16 < 2048 or window16 % 256:
        raise RestoreError(f"the window must be a multiple of 256 samples at 16 kHz, at least 2048 (0.128 s); "
                           f"got {window16}")
    if not 0 < overlap16 <= (window16 - 2 * RESAMPLE_MARGIN) // 2:
        raise RestoreError(f"the overlap must be positive and at most half the window; got {overlap16} of {window16}")


def fit_length(n16: int) -> int:
    """Samples a fit needs for ``n16`` samples at 16 kHz: a multiple of 256, at least 1024."""
    return max(1024, -(-n16 // 256) * 256)


def plan_windows(n: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[(start, end), ...]`` covering ``[0, n)``: one when ``n <= length``, else the
    fewest windows of ``length`` whose neighbours overlap by at least ``overlap``, spread evenly
    (the first starts at 0, the last ends at ``n``)."""
    if n <= length:
        return [(0, n)]
    hop = length - overlap
    k = 1 + math.ceil((n - length) / hop)
    starts = [round(i * (n - length) / (k - 1)) for i in range(k)]
    return [(s, s + length) for s in starts]


def crossfade_weights(windows: list[tuple[int, int]], k: int, ramp: int) -> np.ndarray:
    """Weights ``(end - start,)`` of window ``k`` for the overlap-add: 1, with a linear ramp of
    ``ramp`` samples (strictly positive) at each side that has a neighbour."""
    a, b = windows[k]
    w = np.ones(b - a)
    r = min(ramp, (b - a) // 2)
    if r > 0:
        up = (np.arange(r) + 0.5) / r
        if k > 0:
            w[:r] = up
        if k < len(windows) - 1:
            w[-r:] = np.minimum(w[-r:], up[::-1])
    return w


def group_gaps(spans: list[tuple[int, int]], n: int, core: int, context: int) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
    """Inpainting windows: ``[((start, end), [gap spans it fills]), ...]`` in file samples.

    Consecutive gaps share a window while they fit in it with ``context`` observed samples on both
    sides; each window is centred on its gaps (shifted inside ``[0, n)``). RestoreError for a gap
    too long for any window.
    """
    limit = core - 2 * context
    groups: list[list[tuple[int, int]]] = []
    for s, e in spans:
        if e - s > limit:
            raise RestoreError(f"a gap of {e - s} samples is longer than one window can fill ({max(limit, 0)} samples "
                               f"with {context} of context on each side); pass a longer --window")
        if groups and e - groups[-1][0][0] <= limit:
            groups[-1].append((s, e))
        else:
            groups.append([(s, e)])
    out = []
    for g in groups:
        if n <= core:
            out.append(((0, n), g))
            continue
        centre = (g[0][0] + g[-1][1]) // 2
        start = min(max(0, centre - core // 2), n - core)
        out.append(((start, start + core), g))
    return out
