"""The time estimate ``python -m dap restore`` prints before the first fit, measured on this machine.

A table of costs measured elsewhere (dap/config/costs.py) says nothing about the user's machine: on a
CPU without native bf16 the same fit is several times slower. So restore times the prior it is about
to fit: the same design, widths, precision and device, on one window of the same length, for a
warm-up and a few timed iterations (:func:`dap.tasks.probe.time_iteration`: a few seconds, under 1 %
of a default run). It measures afresh every time (no cache): the estimate follows the machine's load.

How many iterations: the budget for ``last`` / ``ema`` and inpainting. With the discrepancy rule a
fit stops when its residual reaches the noise floor, with more noise sooner, so the cap alone
overstates the time several-fold. For restore's default prior (design, widths, learning rate,
tolerance) the stop is predicted from each window's estimated input SNR (the same blind estimate the
rule uses, on up to :data:`SNR_WINDOWS` windows spread over the file): log-linear through the
iterations measured at two SNRs (:data:`dap.config.costs.DISCREPANCY_STOPS`), at most the cap. Any
other prior has no such measurement; its estimate is the cap's, an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dap.config.costs import DISCREPANCY_STOPS, ProbeSpec
from dap.config.plan import minutes
from dap.config.schedule import PAPER_SCHEDULE
from dap.noise import estimate_noise
from dap.restore.defaults import DEFAULT_DESIGN, DEFAULT_TOLERANCE, FIT_SR
from dap.restore.reading import AudioInfo, SpanReader
from dap.restore.resampling import cached_resample
from dap.restore.windows import WindowPlan, fit_length, plan_windows
from dap.tasks.probe import time_iteration

#: Windows whose input SNR is estimated for the prediction, spread evenly over the file.
SNR_WINDOWS = 8


def predicted_stop(snr_db: float, cap: int) -> float:
    """Iterations the discrepancy rule is predicted to take on a window of input SNR ``snr_db``:
    log-linear through :data:`~dap.config.costs.DISCREPANCY_STOPS`, between 1 and ``cap``."""
    (s0, n0), (s1, n1) = DISCREPANCY_STOPS
    rate = math.log(n1 / n0) / (s1 - s0)
    return float(min(cap, max(1.0, n0 * math.exp(rate * (snr_db - s0)))))


def stop_is_modelled(process, task: str) -> bool:
    """Whether :data:`~dap.config.costs.DISCREPANCY_STOPS` describes the fits of ``process`` (a
    :class:`dap.restore.WindowPrior`) on ``task``: the discrepancy rule with restore's default prior
    (design, paper widths, learning rate, tolerance), where it was measured."""
    return (process.rule(task) == "discrepancy" and process.design == DEFAULT_DESIGN and not process.widths
            and process.lr == PAPER_SCHEDULE.lr and process.tolerance == DEFAULT_TOLERANCE)


def window_snrs(info: AudioInfo, window16: int, overlap16: int, noise: str = "auto",
                most: int = SNR_WINDOWS) -> list[float]:
    """The blind input SNR (dB, :attr:`dap.noise.NoiseEstimate.input_snr_db`) of up to ``most``
    windows of restore's plan, spread evenly over the file, each channel that is not silent; each
    window as its fit sees it (16 kHz, padded to the fit length)."""
    plan = WindowPlan(info.sr, window16, overlap16)
    windows = plan_windows(info.frames, plan.core, plan.overlap)
    picks = sorted({int(k) for k in np.linspace(0, len(windows) - 1, min(most, len(windows))).round()})
    reader = SpanReader(info.path, info.channels)
    snrs = []
    for k in picks:
        seg = reader.get(*windows[k])
        for x in seg:
            if not np.any(x):
                continue  # restore skips a silent channel: no fit
            x16 = cached_resample(x / np.abs(x).max(), info.sr, FIT_SR)
            x16 = np.pad(x16, (0, fit_length(x16.shape[0]) - x16.shape[0]))
            snrs.append(estimate_noise(x16, noise).input_snr_db)
    return snrs


@dataclass(frozen=True)
class Estimate:
    """fits x (first + (iterations - 1) x steady) seconds: ``steady`` seconds per iteration and
    ``first`` to the end of the first iteration (building the prior and its kernels), measured on one
    window; ``iterations`` per fit is ``cap`` unless ``predicted`` (the discrepancy rule's stop,
    :func:`predicted_stop`, averaged over the windows whose SNR ``snrs`` was estimated)."""

    fits: int
    cap: int
    steady: float
    first: float
    snrs: tuple[float, ...] = ()
    predicted: float | None = None

    @property
    def iterations(self) -> float:
        """Iterations per fit the estimate counts."""
        return self.cap if self.predicted is None else self.predicted

    def seconds_for(self, iterations: float) -> float:
        return self.fits * (self.first + max(0.0, iterations - 1) * self.steady)

    @property
    def seconds(self) -> float:
        """The predicted wall time of every fit."""
        return self.seconds_for(self.iterations)

    def line(self, upper_bound: bool, device: str) -> str:
        """``restore: estimated time: N min (...)``: what the number is made of, where it was measured."""
        text = f"restore: estimated time: {minutes(self.seconds)} min ({self.fits} fit(s) x "
        if self.predicted is not None:
            low, high = min(self.snrs), max(self.snrs)
            snr = f"{low:.1f} dB" if high - low < 0.05 else f"{low:.1f} to {high:.1f} dB"
            return text + (f"~{self.predicted:.0f} iterations x {self.steady:.3g} s/iteration, measured just now on "
                           f"{device}; the stop predicted from the estimated input SNR, {snr}, docs/stopping.md; "
                           f"at most {minutes(self.seconds_for(self.cap))} min at the cap of {self.cap})")
        text += (f"{'up to ' if upper_bound else ''}{self.cap} iterations x {self.steady:.3g} s/iteration, "
                 f"measured just now on {device}")
        return text + ("; the discrepancy rule usually stops earlier)" if upper_bound else ")")


def measure_estimate(fits: int, cap: int, design: str, widths: tuple[int, ...] | None, precision: str,
                     device: str | None, window16: int, snrs: list[float] | None = None) -> Estimate:
    """Time the prior restore will fit and return its :class:`Estimate`.

    Args:
        fits: windows x channels; cap: the most iterations of one fit.
        design, widths, precision, device: the prior's settings, as given to restore (None widths:
            the paper's; None device: CUDA when available).
        window16: the window length in samples at 16 kHz (a multiple of 256).
        snrs: the windows' estimated input SNRs (:func:`window_snrs`) when the discrepancy rule's
            stop is to be predicted (restore's default prior only); None: count the cap.

    Returns:
        The estimate (one fit of denoising and of inpainting run the same network).
    """
    spec = ProbeSpec("denoise", design, (("widths", tuple(widths)),) if widths else (), precision)
    steady, first = time_iteration(spec, samples=window16, device=device)
    if not snrs:
        return Estimate(fits, cap, steady, first)
    predicted = float(np.mean([predicted_stop(s, cap) for s in snrs]))
    return Estimate(fits, cap, steady, first, tuple(snrs), predicted)
