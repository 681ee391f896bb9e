"""What the deep-prior explorer (notebook ``09_explore_deep_priors``) computes, without any widget.

The explorer fits one design (or the four designs in turn) to one corrupted clip and shows the fit
while it runs. This package holds everything but the buttons, so that it runs headless (papermill,
tests) exactly as it runs behind the ipywidgets UI of :mod:`dap.explore.widgets`:

* :class:`Choices`: the choices a student makes (clip, corruption, design, size, budget);
* :func:`embedded_clip`, :func:`read_upload`, :func:`crop_loudest`: the clip, as a peak-normalised
  mono 16 kHz vector ``(L,)`` with ``L`` a multiple of 256 samples (two poolings over ``L / 64``
  STFT frames);
* :func:`make_problem`: the corruption (Gaussian noise of std ``sigma``, or gaps), a
  :class:`Problem`;
* :class:`LiveFit`: runs the fits through :func:`dap.tasks.denoise.restore` /
  :func:`dap.tasks.inpaint.restore` (so through :func:`dap.engine.fit.fit`, no other training loop), in the
  calling thread or a background thread, calls ``on_update(snapshot)`` every few iterations and
  stops early when asked (the Stop button);
* :func:`progress_figure`, :func:`figure_png`, :func:`wav_bytes`: what the UI displays.

Costs on a 2-core CPU (measured: dap/config/costs.py): the paper's dense design costs about a second per
iteration (bf16) on a 1 s clip at widths 35/70/140. The explorer's defaults (a 0.512 s clip, ``laptop`` widths 16/32/64,
the exponential-dilation design, 200 iterations) are sized for about a minute; the UI says so.

Modules: :mod:`~dap.explore.choices` (the choices, the budget sentence), :mod:`~dap.explore.clips`
(embedded clips, uploads, the loudest excerpt), :mod:`~dap.explore.problem` (the corruption),
:mod:`~dap.explore.session` (the live fits), :mod:`~dap.explore.display` (figures, players).
"""

from __future__ import annotations

from dap.explore.clips import (MIN_UPLOAD_S, crop_loudest, embedded_clip, embedded_excerpt, embedded_ids,
                               loudest_excerpt, read_upload)
from dap.explore.display import figure_png, playback_gain, progress_figure, wav_bytes
from dap.explore.problem import Problem, make_problem
from dap.explore.session import LiveFit, Snapshot
from dap.explore.choices import (CLIP_SECONDS, LENGTH_MULTIPLE, OUTPUT_NOTES, OUTPUT_RULES, SIZE_NOTES, SIZES, TASKS,
                                  ExplorerError, Choices, clip_samples, describe_budget)
from dap.tasks import denoise, inpaint  # the fits run through these (tests patch denoise.restore)

__all__ = [
    "CLIP_SECONDS", "LENGTH_MULTIPLE", "MIN_UPLOAD_S", "OUTPUT_NOTES", "OUTPUT_RULES", "SIZE_NOTES", "SIZES", "TASKS",
    "ExplorerError", "LiveFit", "Problem", "Choices", "Snapshot", "clip_samples", "crop_loudest", "denoise",
    "describe_budget", "embedded_clip", "embedded_excerpt", "embedded_ids", "figure_png", "inpaint",
    "loudest_excerpt", "make_problem", "playback_gain", "progress_figure", "read_upload", "wav_bytes",
]
