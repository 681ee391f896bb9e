"""What the explorer displays: the progress figure, PNG bytes, WAV bytes for the players, one playback gain."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import soundfile as sf

from dap.core.audio import SAMPLE_RATE
from dap.explore.problem import Problem
from dap.report.plots import log_magnitude, spectrogram
from dap.priors import DESIGN_LABELS


def progress_figure(problem: Problem, histories: dict[str, list[dict]] | None = None,
                    current: np.ndarray | None = None, title: str = "", dpi: int = 80,
                    restored_label: str = "restored (latest iterate)"):
    """The explorer's picture: curves on top, spectrograms below.

    Top left: the score of the current iterate against iteration, one curve per design (SNR for
    denoising, SNR inside the gaps for inpainting; the input's level dashed); without a reference,
    the loss (log scale). Top right: the loss. Bottom: spectrograms of clean / corrupted / restored
    (``current`` ``(L,)``, the latest output, titled ``restored_label``; gaps shaded). Returns a
    matplotlib ``Figure`` built without pyplot (safe in a background thread).
    """
    from matplotlib.figure import Figure  # here: matplotlib is optional (only the figures need it)
    from matplotlib.ticker import MaxNLocator

    histories = {d: h for d, h in (histories or {}).items() if h}
    fig = Figure(figsize=(11, 6.2), dpi=dpi)
    grid = fig.add_gridspec(2, 3, height_ratios=(1, 1.05), hspace=0.45, wspace=0.3)
    ax_score = fig.add_subplot(grid[0, :2])
    ax_loss = fig.add_subplot(grid[0, 2])
    key = problem.score_key
    for design, rows in histories.items():
        h = pd.DataFrame(rows)
        if key in h:
            ax_score.plot(h["iteration"], h[key], lw=1.4, label=DESIGN_LABELS[design])
        ax_loss.plot(h["iteration"], h["loss"], lw=1.2, label=DESIGN_LABELS[design])
    if key == "snr":
        ax_score.axhline(problem.input_snr, color="0.4", ls="--", lw=1, label="noisy input")
        ax_score.set_ylabel("SNR (dB)")
    elif key == "snr_gaps":
        ax_score.axhline(0.0, color="0.4", ls="--", lw=1, label="gaps left empty")
        ax_score.set_ylabel("SNR inside the gaps (dB)")
    else:
        ax_score.set_ylabel("loss (no clean reference)")
        ax_score.set_yscale("log")
    ax_score.set_title("score of the current iterate against the clean clip" if key != "loss"
                       else "fitting your clip as it is: loss only (no clean reference)", fontsize=9)
    ax_loss.set_title("loss (what the fit minimises)", fontsize=9)
    for ax in (ax_score, ax_loss):
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if histories:
        ax_score.legend(fontsize=7, loc="best")
    signals = {}
    if problem.clean is not None:
        signals["clean"] = problem.clean
    signals["corrupted" if problem.clean is not None else "your clip (fitted as it is)"] = problem.observed
    signals[restored_label] = current if current is not None else np.zeros_like(problem.observed)
    vmax = max(log_magnitude(x).max() for x in signals.values() if np.any(x))
    for i, (name, x) in enumerate(signals.items()):
        ax = fig.add_subplot(grid[1, i])
        if np.any(x):
            spectrogram(ax, x, name, vmin=vmax - 80, vmax=vmax)
        else:
            ax.set_title(f"{name}: press Run", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        if problem.mask is not None:
            for a, b in problem.mask.spans:
                ax.axvspan(a / SAMPLE_RATE, b / SAMPLE_RATE, color="cyan", alpha=0.15)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib ``Figure`` (Agg canvas; no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # here: matplotlib is optional

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def wav_bytes(x: np.ndarray, gain: float = 1.0, sr: int = SAMPLE_RATE) -> bytes:
    """16-bit WAV bytes of ``gain * x`` ``(L,)``, clipped to [-1, 1] (for an audio player)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(x, dtype=np.float32) * gain, -1, 1), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def playback_gain(problem: Problem) -> float:
    """One gain for all players of a problem, so that loudness compares: 0.9 / the louder peak."""
    peaks = [np.max(np.abs(x)) for x in (problem.clean, problem.observed) if x is not None]
    return float(0.9 / max(max(peaks), 1e-6))
