"""The streaming passes over a file: fit each window channel by channel, overlap-add or splice, write."""

from __future__ import annotations

from typing import Callable

import numpy as np

from dap.core.audio import fix_length
from dap.core.errors import FitDiverged
from dap.restore.defaults import FIT_SR, SPLICE_FADE_S
from dap.restore.gaps import gaps_at_fit_rate
from dap.restore.prior import WindowFn
from dap.restore.reading import AudioInfo, SpanReader, read_blocks
from dap.restore.resampling import cached_resample
from dap.restore.summary import RestoreReport
from dap.restore.windows import WindowPlan, crossfade_weights, fit_length, group_gaps, plan_windows
from dap.restore.writing import BlockWriter
from dap.tasks.inpaint import GapMask


class WindowRestorer:
    """Restores one window of the file, channel by channel: normalise by the channel's peak,
    resample to 16 kHz, call the window function, resample back; counts fits, silent channels and
    diverged fits in the report."""

    def __init__(self, info: AudioInfo, plan: WindowPlan, process: WindowFn, seed: int, report: RestoreReport,
                 progress: Callable[[int], None] | None, warn: Callable[[str], None]):
        self.info, self.plan, self.process, self.seed = info, plan, process, seed
        self.report, self.progress, self.warn = report, progress, warn

    def run(self, seg: np.ndarray, offset: int, index: int, gaps: list[tuple[int, int]] | None = None) -> np.ndarray:
        """seg ``(C, len)`` starting at file sample ``offset``; gaps (file samples) for inpainting.
        Returns the restored ``(C, len)``."""
        out = np.empty_like(seg)
        self.report.windows += 1
        for c in range(seg.shape[0]):
            peak = self.info.peaks[c]
            x = seg[c]
            if gaps is not None:
                x = x.copy()
                for s, e in gaps:
                    x[max(s - offset, 0): max(e - offset, 0)] = 0.0
            if peak == 0 or not np.any(x):
                out[c] = 0.0
                self.report.skipped_silent += 1
            else:
                seed = (self.seed * 1_000_003 + index * 1009 + c) & 0x7FFFFFFF
                try:
                    out[c] = self._fit(x / peak, offset, gaps, seed) * peak
                    self.report.fits += 1
                except FitDiverged as exc:
                    where = f"{offset / self.info.sr:.2f}-{(offset + seg.shape[1]) / self.info.sr:.2f} s, channel {c + 1}"
                    self.report.failed.append(f"{where}: {exc}")
                    self.warn(f"{self.info.path}: the fit of {where} diverged ({exc}); that window is left as the input")
                    out[c] = x
            if self.progress:
                self.progress(1)
        return out

    def _fit(self, x: np.ndarray, offset: int, gaps, seed: int) -> np.ndarray:
        sr = self.info.sr
        x16 = cached_resample(x, sr, FIT_SR)
        n16 = x16.shape[0]
        length = fit_length(n16)
        x16 = np.pad(x16, (0, length - n16))
        mask = None
        if gaps is not None:
            mask = GapMask(length, tuple(gaps_at_fit_rate(gaps, offset, sr, n16, length)))
            x16 = x16 * mask.observed()  # the resampler rings into the gaps: the observation is zero there
        # Resampling can overshoot the file's peak (Gibbs ripple near sharp edges); the fit clips its
        # output to [-1, 1], so such a window is scaled down into range and back up afterwards.
        gain = max(1.0, float(np.abs(x16).max()))
        y16 = np.asarray(self.process((x16 / gain).astype(np.float32), mask, seed), dtype=np.float32).reshape(-1)
        if y16.shape[0] != length or not np.all(np.isfinite(y16)):
            raise FitDiverged(f"the window function returned {y16.shape[0]} samples (expected {length}) or "
                              f"non-finite values")
        y = cached_resample(y16[:n16] * gain, FIT_SR, sr)
        return fix_length(y, x.shape[0])


def denoise_stream(info: AudioInfo, plan: WindowPlan, restorer: WindowRestorer, writer: BlockWriter) -> None:
    """Windowed denoising with a weighted overlap-add; memory: a few windows."""
    n, m = info.frames, plan.margin
    windows = plan_windows(n, plan.core, plan.overlap)
    reader = SpanReader(info.path, info.channels)
    acc = np.zeros((info.channels, 0))
    wsum = np.zeros(0)
    acc_start = 0  # file index of acc[:, 0]
    for k, (a, b) in enumerate(windows):
        lo, hi = max(0, a - m), min(n, b + m)
        seg = reader.get(lo, hi)
        y = restorer.run(seg, lo, k)[:, a - lo: b - lo]
        w = crossfade_weights(windows, k, plan.overlap)
        grow = b - acc_start - acc.shape[1]
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((info.channels, grow))], axis=1)
            wsum = np.concatenate([wsum, np.zeros(grow)])
        acc[:, a - acc_start: b - acc_start] += y * w
        wsum[a - acc_start: b - acc_start] += w
        final = windows[k + 1][0] if k + 1 < len(windows) else n
        cut = final - acc_start
        writer.write(acc[:, :cut] / wsum[:cut])
        acc, wsum, acc_start = acc[:, cut:], wsum[cut:], final


def inpaint_stream(info: AudioInfo, plan: WindowPlan, spans: list[tuple[int, int]], restorer: WindowRestorer,
                   writer: BlockWriter) -> None:
    """Fill each gap from a window around it, then copy the input through with the fills spliced in."""
    n, m, sr = info.frames, plan.margin, info.sr
    groups = group_gaps(spans, n, plan.core, plan.gap_context)
    fade = max(1, int(round(SPLICE_FADE_S * sr)))
    patches = []  # (start, end, fill (C, end - start), weight (end - start,))
    reader = SpanReader(info.path, info.channels)
    for k, ((a, b), own) in enumerate(groups):
        lo, hi = max(0, a - m), min(n, b + m)
        seg = reader.get(lo, hi)
        window_gaps = [(s, e) for s, e in spans if e > lo and s < hi]  # every gap in view is masked
        y = restorer.run(seg, lo, k, window_gaps)
        p0, p1 = max(a, own[0][0] - fade), min(b, own[-1][1] + fade)
        weight = np.zeros(p1 - p0)
        idx = np.arange(p0, p1)
        for s, e in own:
            ramp_in = np.clip((idx - (s - fade) + 0.5) / fade, 0, 1)
            ramp_out = np.clip(((e + fade) - idx - 0.5) / fade, 0, 1)
            weight = np.maximum(weight, np.minimum(ramp_in, ramp_out))
            weight[max(s, p0) - p0: min(e, p1) - p0] = 1.0
        patches.append((p0, p1, y[:, p0 - lo: p1 - lo], weight))
    pos = 0
    for block in read_blocks(info.path, "float64"):  # float64: a DOUBLE file passes through unchanged
        x = block.T
        end = pos + x.shape[1]
        for p0, p1, fill, weight in patches:
            s, e = max(p0, pos), min(p1, end)
            if s < e:
                w = weight[s - p0: e - p0]
                x[:, s - pos: e - pos] = (1 - w) * x[:, s - pos: e - pos] + w * fill[:, s - p0: e - p0]
        writer.write(x[:, : max(0, min(end, n) - pos)])
        pos = end
        if pos >= n:
            break
