"""Figures of paper 2: box plots per configuration (Figure 2) and attention matrices (Figure 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dap.wiass.side_info import PAD_VALUE

#: Panels of Figure 2 and whether higher is better.
FIGURE2_PANELS = (("SDR", True), ("SAR", True), ("SIR", True), ("PES", False), ("EPS", False))


def figure2_boxplots(rows: pd.DataFrame, configurations, panels=FIGURE2_PANELS):
    """One panel per metric, one box per configuration, each point one test fragment's score
    (its median over 1-s windows for SDR / SAR / SIR). As in the paper, boxes span the quartiles
    with the median inside and whiskers over the whole range; the points are drawn on top since
    the embedded test set is small. A configuration without any defined value (e.g. EPS when the
    model never predicts exact silence) is marked "n/a"."""
    import matplotlib.pyplot as plt  # not at the top: pyplot picks a backend on import

    ok = rows[rows["status"].fillna("ok") == "ok"].copy()
    ok["value"] = pd.to_numeric(ok["value"], errors="coerce")
    configurations = [c for c in configurations if c in set(ok["design"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4))
    for ax, (metric, higher) in zip(np.atleast_1d(axes), panels):
        data = [ok[(ok["design"] == c) & (ok["metric"] == metric)]["value"].dropna().to_numpy()
                for c in configurations]
        data = [d[np.isfinite(d)] for d in data]
        pos = np.arange(1, len(configurations) + 1)
        present = [i for i, d in enumerate(data) if d.size]
        if present:
            ax.boxplot([data[i] for i in present], positions=pos[present], whis=(0, 100),
                       widths=0.6, medianprops={"color": "tab:orange", "lw": 1.5})
        rng = np.random.default_rng(0)
        for i, d in enumerate(data):
            if d.size:
                ax.scatter(pos[i] + rng.uniform(-0.12, 0.12, d.size), d, s=9, color="tab:blue",
                           alpha=0.6, zorder=3)
            else:
                ax.text(pos[i], 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center",
                        fontsize=7, color="gray", rotation=90)
        ax.set_xticks(pos)
        ax.set_xticklabels(configurations, rotation=60, fontsize=8)
        ax.set_title(f"{metric} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_ylabel("dB")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _side_image(side) -> np.ndarray:
    """Side-information values ``(M, 1)`` for display in [0, 1]: content scaled to [0, 0.75] (dark
    blue = 0 in viridis) and padding at 1 (yellow, as in the paper); the raw padding value 100
    would flatten the content's colours, and a separate colour keeps 1s and padding apart."""
    values = side.values[:, 0].astype(float)
    mask = np.asarray(side.mask) if hasattr(side, "mask") else values != PAD_VALUE
    content = values[mask]
    top = content.max() if content.size and content.max() > 0 else 1.0
    return np.where(mask, 0.75 * values / top, 1.0)[:, None]


def attention_figure(examples, sr: int = 16000, show_truth: bool = True):
    """Figure 3: for each example, the attention ``alpha (N x M)`` with step m vertically and
    frame n horizontally, the side information beside it on the left (padding in yellow), and the
    true target spectrogram (dB) below. The true alignment is overlaid as white dots."""
    import matplotlib.pyplot as plt  # not at the top: pyplot picks a backend on import

    n_ex = len(examples)
    cols = min(n_ex, 3)
    rows = -(-n_ex // cols)
    fig = plt.figure(figsize=(5.0 * cols, 5.8 * rows))
    outer = fig.add_gridspec(rows, cols, wspace=0.3, hspace=0.35)
    for k, ex in enumerate(examples):
        att = np.asarray(ex.attention)
        n, m = att.shape
        inner = outer[k // cols, k % cols].subgridspec(2, 2, width_ratios=[1, 12], height_ratios=[3, 1.3],
                                     wspace=0.05, hspace=0.25)
        ax_side = fig.add_subplot(inner[0, 0])
        ax_att = fig.add_subplot(inner[0, 1])
        ax_spec = fig.add_subplot(inner[1, 1], sharex=ax_att)
        ax_side.imshow(_side_image(ex.side), aspect="auto", origin="lower", cmap="viridis",
                       vmin=0, vmax=1, extent=(0, 1, -0.5, m - 0.5), interpolation="nearest")
        ax_side.set_xticks([])
        ax_side.set_ylabel("side-information step m")
        ax_att.imshow(att.T, aspect="auto", origin="lower", cmap="viridis",
                      extent=(-0.5, n - 0.5, -0.5, m - 0.5), interpolation="nearest")
        if show_truth:
            align = np.asarray(ex.side.alignment)
            frames = np.flatnonzero(align >= 0)
            ax_att.plot(frames, align[frames], ".", ms=1.0, color="white", alpha=0.5)
        ax_att.set_yticks([])
        scores = ", ".join(f"{label} {ex.scores[key]:.2f} (chance {ex.scores[f'chance_{key}']:.3f})"
                           for key, label in (("alignment_accuracy", "exact"),
                                              ("segment_accuracy", "segment"))
                           if key in ex.scores and f"chance_{key}" in ex.scores
                           and np.isfinite(ex.scores[key]))
        ax_att.set_title(f"{ex.configuration}: attention α\n{scores}", fontsize=9)
        plt.setp(ax_att.get_xticklabels(), visible=False)
        db = 20 * np.log10(np.maximum(np.asarray(ex.target_mag).T, 1e-6))
        ax_spec.imshow(np.maximum(db, db.max() - 80), aspect="auto", origin="lower", cmap="magma",
                       extent=(-0.5, n - 0.5, 0, sr / 2000))
        ax_spec.set_xlabel("mixture frame n")
        ax_spec.set_ylabel("kHz")
        ax_spec.set_title("true target spectrogram", fontsize=8)
    fig.text(0.5, -0.02 / rows, "white dots: true alignment; exact / segment: accuracies on this "
             "fragment, beside a uniformly random argmax's", ha="center", fontsize=8)
    return fig


def training_curves(results: dict, silence: float | None = None):
    """Validation L1 loss per epoch of each trained configuration (the best epoch marked): shows
    how far the training budget got. ``silence``: the loss of predicting all zeros, drawn as a
    dashed line (a model above or near it has not learned to separate yet)."""
    import matplotlib.pyplot as plt  # not at the top: pyplot picks a backend on import

    fig, ax = plt.subplots(figsize=(6, 3.4))
    if silence is not None:
        ax.axhline(silence, color="gray", ls="--", lw=1, label="predict silence")
    for name, res in results.items():
        h = res.history
        if h is None or h.empty:
            continue
        line, = ax.plot(h["epoch"], h["val_loss"], label=name, lw=1.3)
        best = h.loc[h["val_loss"].idxmin()]
        ax.plot([best["epoch"]], [best["val_loss"]], "o", color=line.get_color(), ms=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation L1 loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
