"""Restore your own recording: deep-prior denoising or gap inpainting of a whole audio file.

What ``python -m dap restore`` runs. A file of any length, sample rate and channel count is
processed in windows, one deep-prior fit (:func:`dap.tasks.denoise.restore` or
:func:`dap.tasks.inpaint.restore`, i.e. :func:`dap.engine.fit.fit`) per window and channel:

* **Resampling.** The priors work at 16 kHz (the paper's rate). Each window is read at the file's
  rate with a short margin on both sides, resampled to 16 kHz, fitted, resampled back and the
  margins cut off, so the output keeps the input's rate and length exactly. Content above 8 kHz is
  not restored: denoising removes it; inpainting fills the gaps only below 8 kHz.
* **Channels** are fitted separately (one fit per channel and window), each scaled by its own
  peak over the whole file (the paper's peak normalisation), and scaled back.
* **Denoising** covers the file with windows of ``window`` samples at 16 kHz (default 16384 =
  1.024 s, the size of the paper's fits) that overlap by at least ``overlap``; the restored windows
  are cross-faded by a weighted overlap-add (linear ramps of ``overlap``, normalised by the sum of
  the weights, so any overlap sums to unity gain).
* **Inpainting** fits only windows around the gaps (``--gaps`` in seconds): gaps close together
  share a window, each window is centred on its gaps so that they have observed context on both
  sides. Outside the gaps the output *is* the input; inside, the prior's fill, blended with the
  input over :data:`SPLICE_FADE_S` at each gap edge.
* **Memory stays bounded** whatever the file's length: the input is read in blocks (two passes:
  one to check it and measure each channel's peak, one to restore) and the output is written block
  by block into a temporary file beside the target, renamed into place when complete (a crash or
  Ctrl-C leaves the old file, never half of one).
* **Blind output selection.** There is no clean reference, so the oracle rule of the paper's tables
  cannot be used. Denoising defaults to ``discrepancy`` (docs/stopping.md): the noise level of
  each window is estimated from the window itself (:mod:`dap.noise`), and the fit stops at the
  first iterate whose residual (the loss against the noisy STFT) has fallen to that noise floor,
  or at :data:`DEFAULT_MAX_ITERATIONS`; if the cap comes first with the loss still at least
  :data:`KEEP_INPUT_RATIO` x the floor, the window is left as the input (its output would be worse
  than the input). A fixed budget cannot be right for every noise level: 200
  iterations (tuned on the sigma-0.1 digits at ~1 dB input SNR) returned
  speech at 12.4 dB input SNR at 9.7 dB, worse than its input, because with less noise the fit
  needs more iterations before it has reproduced the speech. ``last`` (the final iterate of
  ``--iterations``, default 200) and ``ema`` (moving average of the outputs, decay 0.99) remain as
  options. Inpainting has no noise to measure: it always uses a fixed budget (``last``, or ``ema``).

Errors a user can cause (unreadable, empty, silent, NaN, too short, bad gaps, unwritable output)
raise a :class:`~dap.core.errors.DapError` whose message names the file; :mod:`dap.cli` prints it as
one line.

Modules, in the order a file goes through them: :mod:`~dap.restore.defaults` (defaults, limits,
:class:`RestoreError`), :mod:`~dap.restore.reading` (probe, scan, streaming reads),
:mod:`~dap.restore.gaps` (``--gaps``), :mod:`~dap.restore.windows` (window geometry),
:mod:`~dap.restore.resampling` (to 16 kHz and back), :mod:`~dap.restore.prior` (the window
function :class:`WindowPrior`), :mod:`~dap.restore.stream` (the passes over the file),
:mod:`~dap.restore.writing` (output format, atomic output), :mod:`~dap.restore.pipeline`
(:func:`restore_file`); beside them :mod:`~dap.restore.estimate` (the time estimate) and
:mod:`~dap.restore.settings_curve` (the time/quality curve the defaults are chosen from).
"""

from __future__ import annotations

from dap.restore.defaults import (BLIND_SELECTIONS, DEFAULT_DESIGN, DEFAULT_ITERATIONS, DEFAULT_MAX_ITERATIONS,
                                  DEFAULT_OVERLAP, DEFAULT_SELECTION, DEFAULT_TASK, DEFAULT_TOLERANCE, DEFAULT_WIDTHS,
                                  DEFAULT_WINDOW, FIT_SR, GAP_CONTEXT_S, KEEP_INPUT_RATIO, MAX_CHANNELS, MAX_SR,
                                  MIN_SECONDS, MIN_SR, READ_BLOCK_SAMPLES, RESAMPLE_MARGIN, SPLICE_FADE_S, RestoreError)
from dap.restore.gaps import gaps_to_samples, merge_spans, parse_gaps
from dap.restore.pipeline import estimate_fits, restore_file
from dap.restore.prior import WindowFit, WindowFn, WindowPrior
from dap.restore.reading import AudioInfo, probe, scan
from dap.restore.summary import RestoreReport
from dap.restore.windows import WindowPlan, check_window, crossfade_weights, fit_length, group_gaps, plan_windows
from dap.restore.writing import VORBIS_MAX_SR, atomic_output, check_encodable, output_format

__all__ = [
    "BLIND_SELECTIONS", "DEFAULT_DESIGN", "DEFAULT_ITERATIONS", "DEFAULT_MAX_ITERATIONS", "DEFAULT_OVERLAP",
    "DEFAULT_SELECTION", "DEFAULT_TASK", "DEFAULT_TOLERANCE", "DEFAULT_WIDTHS", "DEFAULT_WINDOW", "FIT_SR", "GAP_CONTEXT_S",
    "KEEP_INPUT_RATIO", "MAX_CHANNELS", "MAX_SR", "MIN_SECONDS", "MIN_SR", "READ_BLOCK_SAMPLES", "RESAMPLE_MARGIN",
    "SPLICE_FADE_S", "VORBIS_MAX_SR", "AudioInfo", "RestoreError", "RestoreReport", "WindowFit", "WindowFn",
    "WindowPlan", "WindowPrior", "atomic_output", "check_encodable", "check_window", "crossfade_weights",
    "estimate_fits", "fit_length", "gaps_to_samples", "group_gaps", "merge_spans", "output_format", "parse_gaps",
    "plan_windows", "probe", "restore_file", "scan",
]
