"""The defaults and limits of ``python -m dap restore`` (the package docstring says why), and its error."""

from __future__ import annotations

from dap.core.errors import DapError

#: The rate every prior is fitted at.
FIT_SR = 16000
#: Defaults of the command line (the package docstring says why).
DEFAULT_TASK = "denoise"
DEFAULT_DESIGN = "dilated_exp_dense"
DEFAULT_WIDTHS: tuple[int, ...] | None = None  # None: the paper's (35, 70, 140)
DEFAULT_ITERATIONS = 200        # the fixed budget of last / ema (and of inpainting)
DEFAULT_SELECTION = "discrepancy"
BLIND_SELECTIONS = ("discrepancy", "last", "ema")
#: The discrepancy rule's cap (iterations per window) and tolerance (loss <= tolerance x floor):
#: docs/stopping.md gives the measurements they come from; design, widths and cap are the fastest
#: setting within 0.5 dB of the best on its time/quality curve (tests/test_restore_settings.py).
DEFAULT_MAX_ITERATIONS = 1000
DEFAULT_TOLERANCE = 1.0
#: When the cap comes before the floor and the loss is still >= this multiple of the floor, the
#: window is left as the input: the residual then holds at least one floor's worth of signal the
#: prior has not reproduced (loss = missing signal + unfitted noise <= missing + floor), so the
#: output's error is at least the input's (docs/stopping.md; measured at full width: at 4.3 x the
#: floor the output was 3.8 dB worse than its input, at 2.05 x 1.1 dB better).
KEEP_INPUT_RATIO = 2.0
#: Window of one fit at 16 kHz, and the minimum overlap of neighbouring windows (samples).
DEFAULT_WINDOW = 16384          # 1.024 s: the paper's 1-s fit size, 2 x 512 x 256 spectrogram
DEFAULT_OVERLAP = 2048          # 0.128 s
#: Context kept around resampled windows (16 kHz samples) so the resampling filter's edge
#: effects fall outside the part that is kept.
RESAMPLE_MARGIN = 128
#: Shortest input accepted: the STFT needs more than 511 samples at 16 kHz.
MIN_SECONDS = 0.064
#: Channels accepted (each one is fitted separately).
MAX_CHANNELS = 64
#: Sample rates accepted (Hz).
MIN_SR, MAX_SR = 1000, 768000
#: Observed context wanted on each side of an inpainting window's gaps, and the blend at each gap edge.
GAP_CONTEXT_S = 0.1
SPLICE_FADE_S = 0.005
#: Samples (frames x channels) read at a time by the streaming passes over the input.
READ_BLOCK_SAMPLES = 1 << 18


class RestoreError(DapError, ValueError):
    """Options of a restoration that cannot work (gaps outside the file, window too small...)."""
