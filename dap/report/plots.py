"""Plots and audio players shared by the notebooks (matplotlib, IPython.display)."""

from __future__ import annotations

import numpy as np
import torch

from dap.core.audio import SAMPLE_RATE, stft


def log_magnitude(x, floor_db: float = -80.0) -> np.ndarray:
    """dB magnitude ``(F, T)`` of a waveform ``(L,)`` with the paper's STFT, floored at ``floor_db``."""
    X = stft(x)
    mag = torch.sqrt(X[0] ** 2 + X[1] ** 2).numpy()
    db = 20 * np.log10(np.maximum(mag, 1e-10))
    return np.maximum(db, db.max() + floor_db)


def spectrogram(ax, x, title: str = "", sr: int = SAMPLE_RATE, vmin: float | None = None, vmax: float | None = None):
    """Draw the dB magnitude of waveform ``x`` (L,) on ``ax``; returns the image."""
    db = log_magnitude(x)
    n_bins, n_frames = db.shape
    extent = (0, len(x) / sr, 0, sr / 2000)
    im = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    return im


def spectrogram_grid(signals: dict[str, np.ndarray], ncols: int = 3, height: float = 2.4):
    """A figure with one spectrogram per named waveform, on a shared colour scale."""
    import matplotlib.pyplot as plt

    n = len(signals)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, height * nrows), squeeze=False)
    vmax = max(log_magnitude(x).max() for x in signals.values())
    for ax, (name, x) in zip(axes.flat, signals.items()):
        spectrogram(ax, x, name, vmin=vmax - 80, vmax=vmax)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def audio_players(signals: dict[str, np.ndarray], sr: int = SAMPLE_RATE):
    """HTML audio players, one per named waveform (for notebooks; inert under papermill)."""
    from IPython.display import HTML, Audio

    rows = []
    for name, x in signals.items():
        player = Audio(np.asarray(x, dtype=np.float32), rate=sr, normalize=True)._repr_html_()
        rows.append(f"<tr><td style='padding-right:1em'>{name}</td><td>{player}</td></tr>")
    return HTML("<table>" + "".join(rows) + "</table>")
