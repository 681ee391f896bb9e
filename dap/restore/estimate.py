"""The time estimate ``python -m dap restore`` prints before the first fit, measured on this machine.

A table of costs measured elsewhere (dap/config/costs.py) says nothing about the user's machine: on a
CPU without native bf16 the same fit is several times slower. So restore times the prior it is about
to fit: the same design, widths, precision and device, on one window of the same length, for a
warm-up and a few timed iterations (:func:`dap.tasks.probe.time_iteration`: a few seconds, under 1 %
of a default run), and multiplies by the number of fits and the iteration cap. It measures afresh every
time (no cache): the estimate follows the machine's load now. With the discrepancy rule the cap is an
upper bound: a fit stops when its residual reaches the noise floor, with more noise sooner
(docs/stopping.md measured 258 iterations at 5 dB input SNR, 784 at 10 dB, the cap of 1500 from 15 dB).
"""

from __future__ import annotations

from dataclasses import dataclass

from dap.config.costs import ProbeSpec
from dap.tasks.probe import time_iteration


@dataclass(frozen=True)
class Estimate:
    """fits x (first + (cap - 1) x steady) seconds: ``steady`` seconds per iteration and ``first``
    to the end of the first iteration (building the prior and its kernels), measured on one window."""

    fits: int
    cap: int
    steady: float
    first: float

    @property
    def seconds(self) -> float:
        """The predicted wall time of every fit at its cap."""
        return self.fits * (self.first + max(0, self.cap - 1) * self.steady)

    def line(self, upper_bound: bool, device: str) -> str:
        """``restore: estimated time: N min (...)``: what the number is made of, where it was measured."""
        m = self.seconds / 60
        text = f"restore: estimated time: {m:.0f} min" if m >= 10 else f"restore: estimated time: {m:.1f} min"
        text += (f" ({self.fits} fit(s) x {'up to ' if upper_bound else ''}{self.cap} iterations x "
                 f"{self.steady:.3g} s/iteration, measured just now on {device}")
        return text + ("; the discrepancy rule usually stops earlier)" if upper_bound else ")")


def measure_estimate(fits: int, cap: int, design: str, widths: tuple[int, ...] | None, precision: str,
                     device: str | None, window16: int) -> Estimate:
    """Time the prior restore will fit and return its :class:`Estimate`.

    Args:
        fits: windows x channels; cap: the most iterations of one fit.
        design, widths, precision, device: the prior's settings, as given to restore (None widths:
            the paper's; None device: CUDA when available).
        window16: the window length in samples at 16 kHz (a multiple of 256).

    Returns:
        The estimate (one fit of denoising and of inpainting run the same network).
    """
    spec = ProbeSpec("denoise", design, (("widths", tuple(widths)),) if widths else (), precision)
    steady, first = time_iteration(spec, samples=window16, device=device)
    return Estimate(fits, cap, steady, first)
