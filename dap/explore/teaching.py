"""Why dilation and density: the computations of the teaching notebook ``10_why_dilation_and_density``.

Three lessons, each a few functions (the notebook holds the narrative):

1. **Receptive fields on the spectrogram grid.** :func:`receptive_field_table` gives each design's
   analytic receptive field (:func:`dap.priors.receptive_field`) in STFT bins / frames and in Hz /
   seconds; :func:`footprint` measures which input cells one output cell reads, by backpropagating
   through the *support network* of a design (every conv averages its inputs, no ReLU, no norm,
   average instead of max pooling), so the gradient is positive exactly on the cells the output can
   see and its size says how many paths lead there; :func:`receptive_field_figure` draws both on a
   spectrogram.
2. **Parameters and cost.** :func:`iteration_gflop` counts the multiply-adds of every conv
   (forward hooks, so the count does not depend on how a conv is computed) and
   :func:`cost_table` adds parameter counts and the seconds per iteration measured through
   :func:`dap.engine.fit.fit`.
3. **Spectral bias: signal before noise.** :func:`spectral_bias` fits the same prior to a clean
   clip and to white noise of the same energy, through :func:`dap.tasks.denoise.restore`, and
   returns both loss curves relative to the target's energy (:func:`spectral_bias_figure` plots
   them). The prior fits the structured clip much faster than the noise: that gap is what makes
   early stopping denoise.

Each lesson's ``*_checks`` function (:func:`receptive_field_checks`, :func:`cost_checks`,
:func:`spectral_bias_checks`) gives the named numbers the notebook publishes for its tests, and
:func:`spectral_bias_table` the table it shows; ``tests/test_teaching.py`` asserts the spectral-bias
claim itself at small scale.

STFT units (docs/method.md, Signal path): 16 kHz, hop 64 -> one frame = 4 ms; n_fft 1023 -> one bin = 15.64 Hz.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from dap.core.audio import HOP, N_FFT, SAMPLE_RATE, check_audio, stft
from dap.config.schedule import PAPER_SCHEDULE
from dap.core.seeds import stream
from dap.engine.fit import FitConfig
from dap.report.plots import log_magnitude
from dap.priors import DESIGN_LABELS, DESIGNS, build_prior, count_parameters, receptive_field
from dap.priors.blocks import ConvUnit, UpStage
from dap.tasks import denoise

#: Seconds per STFT frame and Hz per frequency bin of the paper's transform.
FRAME_S = HOP / SAMPLE_RATE
BIN_HZ = SAMPLE_RATE / N_FFT


def _prior_opts(widths) -> dict:
    """``build_prior`` options for ``widths`` (None: the paper's); accepts strings ("16") too."""
    return {} if widths is None else {"widths": tuple(int(w) for w in widths)}


# ----------------------------------------------------------------------------- 1. receptive fields
def receptive_field_table(designs=DESIGNS, samples: int = 16384) -> pd.DataFrame:
    """Analytic receptive field of each design, one row per design.

    Columns: ``design``, ``bins`` and ``frames`` (input cells along frequency and time),
    ``Hz`` and ``ms`` (the same in physical units), and ``share of the grid``: the fraction of a
    ``2 x 512 x (samples / 64)`` spectrogram that the field's bounding box covers (capped at 1).
    """
    n_bins, n_frames = N_FFT // 2 + 1, samples // HOP
    rows = []
    for d in designs:
        fb, ft = receptive_field(d, "freq"), receptive_field(d, "time")
        rows.append({"design": DESIGN_LABELS[d], "bins": fb, "frames": ft, "Hz": round(fb * BIN_HZ),
                     "ms": round(ft * FRAME_S * 1000), "share of the grid":
                     round(min(fb, n_bins) * min(ft, n_frames) / (n_bins * n_frames), 3)})
    return pd.DataFrame(rows)


def support_network(design: str, widths=(4, 8, 16)) -> nn.Module:
    """The *support network* of a design: same wiring, every conv an average, no ReLU, no norm.

    Conv weights are ``1 / (C_in * kh * kw)`` with zero bias, ReLUs are identities, InstanceNorm
    is dropped (``norm="none"``) and max pooling becomes average pooling. The network is then
    linear with positive coefficients: the gradient of one output cell is positive on exactly the
    input cells that some path reaches (no cancellation), and larger where more paths arrive.
    Widths do not change the support; small widths keep it cheap.
    """
    model = build_prior(design, norm="none", **_prior_opts(widths))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / (m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]))
                if m.bias is not None:
                    m.bias.zero_()
            if isinstance(m, (ConvUnit, UpStage)):
                m.act = nn.Identity()
    model.pool = nn.AvgPool2d(kernel_size=2, stride=2)
    return model.eval()


def footprint(design: str, shape: tuple[int, int] = (512, 256), point: tuple[int, int] | None = None,
              widths=(4, 8, 16)) -> np.ndarray:
    """Which input cells the output cell ``point = (bin, frame)`` reads, and through how many paths.

    Returns ``(F, T)`` float64 = |d out[:, :, bin, frame] / d input| summed over channels in the
    :func:`support_network`, normalised to a maximum of 1: positive exactly inside the receptive
    field (its bounding box equals :func:`dap.priors.receptive_field` along both axes when it fits
    in the grid), zero outside. ``point`` defaults to the centre of the grid. ``shape`` must be
    divisible by 4 (two poolings).
    """
    n_bins, n_frames = shape
    f0, t0 = point if point is not None else (n_bins // 2, n_frames // 2)
    if not (0 <= f0 < n_bins and 0 <= t0 < n_frames):
        raise ValueError(f"point {(f0, t0)} is outside the {shape} grid")
    model = support_network(design, widths)
    x = torch.zeros(1, 2, n_bins, n_frames, requires_grad=True)
    model(x)[0, :, f0, t0].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1)).double().numpy()
    return g / g.max()


def footprint_extent(fp: np.ndarray) -> tuple[int, int]:
    """Bounding-box size ``(bins, frames)`` of the nonzero cells of a :func:`footprint`."""
    rows, cols = np.nonzero(fp > 0)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def receptive_field_figure(clip: np.ndarray, designs=DESIGNS, point_s: float | None = None,
                           point_hz: float | None = None, widths=(4, 8, 16), floor_db: float = -60.0):
    """Receptive fields of ``designs`` drawn on the spectrogram of ``clip`` ``(L,)``.

    One panel per design: the clip's spectrogram in grey, the :func:`footprint` of the output cell at
    (``point_s`` seconds, ``point_hz``; default the middle of the grid) in colour (dB of the path weight, floored at
    ``floor_db``), and the analytic receptive field as a dashed box. Returns ``(figure, extents)``
    with extents: design -> measured ``(bins, frames)``.
    """
    import matplotlib.pyplot as plt  # only where a figure is drawn: slow to import, absent from lean installs

    clip = check_audio(clip, "clip")
    db = log_magnitude(clip)
    n_bins, n_frames = db.shape
    t0 = n_frames // 2 if point_s is None else int(round(point_s / FRAME_S))
    f0 = n_bins // 2 if point_hz is None else int(round(point_hz / BIN_HZ))
    extent = (0, n_frames * FRAME_S, 0, n_bins * BIN_HZ / 1000)
    fig, axes = plt.subplots(1, len(designs), figsize=(3.3 * len(designs), 3.2), sharey=True, squeeze=False)
    extents = {}
    for ax, design in zip(axes[0], designs):
        fp = footprint(design, (n_bins, n_frames), (f0, t0), widths)
        extents[design] = footprint_extent(fp)
        ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="gray", alpha=0.55)
        weight = np.where(fp > 0, np.maximum(10 * np.log10(np.maximum(fp, 1e-300)), floor_db), np.nan)
        im = ax.imshow(weight, origin="lower", aspect="auto", extent=extent, cmap="viridis", alpha=0.7,
                       vmin=floor_db, vmax=0)
        fb, ft = receptive_field(design, "freq"), receptive_field(design, "time")
        # The box has the analytic size; it sits on the measured footprint where that fits in the grid
        # (pooling makes the field slightly asymmetric around the cell), else it is centred on the cell.
        rows, cols = np.nonzero(fp > 0)
        b0 = rows.min() if extents[design][0] == fb else f0 - fb / 2
        c0 = cols.min() if extents[design][1] == ft else t0 - ft / 2
        ax.add_patch(plt.Rectangle((c0 * FRAME_S, b0 * BIN_HZ / 1000), ft * FRAME_S, fb * BIN_HZ / 1000,
                                   fill=False, ls="--", lw=1.2, ec="white"))
        ax.plot(t0 * FRAME_S, f0 * BIN_HZ / 1000, "r+", ms=8)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(f"{DESIGN_LABELS[design]}\n{ft} frames ({ft * FRAME_S * 1000:.0f} ms) x {fb} bins "
                     f"({fb * BIN_HZ / 1000:.1f} kHz)", fontsize=8)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("kHz")
    fig.tight_layout()
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, pad=0.01, label="path weight (dB)")
    return fig, extents


def receptive_field_checks(designs, extents: dict[str, tuple[int, int]]) -> dict:
    """Named numbers of lesson 1 (notebook 10 publishes them for its tests): per design the
    analytic receptive field ``rf/<design>/bins`` and ``/frames`` and the measured footprint
    ``footprint/<design>/bins`` and ``/frames`` (``extents``: from :func:`receptive_field_figure`,
    clipped by the grid)."""
    out = {}
    for d in designs:
        out[f"rf/{d}/bins"] = receptive_field(d, "freq")
        out[f"rf/{d}/frames"] = receptive_field(d, "time")
        out[f"footprint/{d}/bins"], out[f"footprint/{d}/frames"] = extents[d]
    return out


# ----------------------------------------------------------------------------- 2. parameters and cost
def iteration_gflop(design: str, widths=None, samples: int = 16384, probe_frames: int = 16) -> float:
    """GFLOP of one training iteration (forward + backward ~ 3 x forward) on a ``samples`` clip.

    Counts ``2 x multiply-adds`` of every conv (``out.numel() * C_in / groups * kh * kw``) with
    forward hooks on a probe input of ``512/16 x probe_frames`` cells and scales by area (every conv
    output shrinks with the input in proportion), then x3 for the backward pass (gradients with
    respect to inputs and weights). Norms, activations and pooling are not counted (a few percent).
    """
    model = build_prior(design, **_prior_opts(widths))
    probe = (32, probe_frames)
    macs = []

    def hook(m, _inp, out):
        macs.append(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 2, *probe))
    finally:
        for h in handles:
            h.remove()
    scale = (N_FFT // 2 + 1) * (samples // HOP) / (probe[0] * probe[1])
    return 3 * 2 * sum(macs) * scale / 1e9


def measure_seconds_per_iteration(design: str, clip: np.ndarray, iterations: int = 3, widths=None,
                                  precision: str = "auto", seed: int = 0) -> float:
    """Median seconds per iteration of a short fit of ``clip`` ``(L,)`` through :func:`dap.engine.fit.fit`.

    The first iteration (one-off setup) is left out when there are at least 3; with fewer the
    mean of all is returned.
    """
    stamps: list[float] = []
    start = time.perf_counter()
    denoise.restore(clip, design=design, seed=seed, prior_opts=_prior_opts(widths),
                    config=FitConfig(iterations=iterations, precision=precision, progress=False),
                    on_step=lambda it, info: stamps.append(time.perf_counter()))
    if len(stamps) >= 3:
        return float(np.median(np.diff(stamps)))
    return (stamps[-1] - start) / max(len(stamps), 1)


def cost_table(clip: np.ndarray, designs=DESIGNS, widths=None, iterations: int = 3, precision: str = "auto",
               seed: int = 0) -> pd.DataFrame:
    """Parameters, GFLOP per iteration and measured seconds per iteration of each design on ``clip``.

    clip: ``(L,)``; widths: None for the paper's (35/70/140). The measurement is short (``iterations``
    iterations): it ranks the designs, it is not a benchmark (see ``benchmarks/bench_fit.py``).
    """
    rows = []
    for d in designs:
        rows.append({"design": DESIGN_LABELS[d], "parameters": count_parameters(build_prior(d, **_prior_opts(widths))),
                     "GFLOP/iteration": round(iteration_gflop(d, widths, clip.shape[0]), 1),
                     "s/iteration (measured)": round(measure_seconds_per_iteration(
                         d, clip, iterations, widths, precision, seed), 3)})
    return pd.DataFrame(rows)


def cost_checks(designs, costs: pd.DataFrame) -> dict:
    """Named numbers of lesson 2: ``params/<design>``, ``gflop/<design>`` and ``seconds/<design>``
    from :func:`cost_table`'s ``costs`` (one row per design of ``designs``, in that order)."""
    out = {}
    for d, row in zip(designs, costs.to_dict("records")):
        out[f"params/{d}"] = int(row["parameters"])
        out[f"gflop/{d}"] = float(row["GFLOP/iteration"])
        out[f"seconds/{d}"] = float(row["s/iteration (measured)"])
    return out


def cost_figure(costs: pd.DataFrame):
    """Bar charts of :func:`cost_table`'s parameters, GFLOP/iteration and measured s/iteration."""
    import matplotlib.pyplot as plt  # only where a figure is drawn

    fig, axes = plt.subplots(1, 3, figsize=(12, 2.8))
    for ax, col in zip(axes, ["parameters", "GFLOP/iteration", "s/iteration (measured)"]):
        ax.barh(costs["design"], costs[col], color="tab:blue")
        ax.set_title(col, fontsize=9)
        ax.invert_yaxis()
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- 3. spectral bias
def matched_white_noise(clip: np.ndarray, seed: int = 0) -> np.ndarray:
    """White Gaussian noise ``(L,)`` with exactly the energy of ``clip`` ``(L,)``, drawn from ``seed``."""
    clip = check_audio(clip, "clip")
    n = stream(seed, 10).standard_normal(clip.shape[0])
    return (n * np.sqrt(np.sum(clip.astype(np.float64) ** 2) / np.sum(n ** 2))).astype(np.float32)


def spectral_bias(clip: np.ndarray, design: str = "dilated_exp", iterations: int = 150, widths=None,
                  seed: int = 0, precision: str = "auto", lr: float = PAPER_SCHEDULE.lr) -> dict[str, pd.DataFrame]:
    """Fit the same prior (same seed: same latent and initial weights) to ``clip`` and to white noise.

    clip: ``(L,)``, L a multiple of 256. Returns ``{"clean clip": h, "white noise (same energy)": h}``
    with ``h`` the fit history plus ``relative_loss = loss / mean(STFT(target)^2)``: 1 means the
    output explains nothing, 0.01 means 99 % of the target's STFT energy is reproduced.
    """
    clip = check_audio(clip, "clip")
    targets = {"clean clip": clip, "white noise (same energy)": matched_white_noise(clip, seed)}
    opts = _prior_opts(widths)
    curves = {}
    for name, target in targets.items():
        energy = float(torch.mean(stft(target) ** 2))
        result = denoise.restore(target, design=design, seed=seed, prior_opts=opts,
                                 config=FitConfig(iterations=iterations, lr=lr, precision=precision, progress=False))
        if not result.ok:
            raise RuntimeError(f"spectral-bias fit of the {name} failed: {result.error}")
        h = result.history[["iteration", "loss"]].copy()
        h["relative_loss"] = h["loss"] / energy
        curves[name] = h
    return curves


def iterations_to(curve: pd.DataFrame, level: float) -> float:
    """First iteration at which ``relative_loss`` falls to ``level`` or below (NaN if never)."""
    hit = curve.loc[curve["relative_loss"] <= level, "iteration"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def spectral_bias_figure(curves: dict[str, pd.DataFrame], title: str = ""):
    """Both relative loss curves on a log scale (the spectral-bias picture). Returns the figure."""
    import matplotlib.pyplot as plt  # only where a figure is drawn

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, h in curves.items():
        ax.semilogy(h["iteration"], h["relative_loss"], lw=1.6, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss / target energy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "the same prior fitted to a clean clip and to noise", fontsize=9)
    fig.tight_layout()
    return fig


def spectral_bias_table(curves: dict[str, pd.DataFrame], levels=(0.5, 0.1)) -> pd.DataFrame:
    """One row per curve of :func:`spectral_bias`: the iterations to each relative-loss level of
    ``levels`` (:func:`iterations_to`; NaN if never reached) and the final relative loss."""
    return pd.DataFrame({name: {**{f"iterations to {lv:g}": iterations_to(h, lv) for lv in levels},
                                "final relative loss": round(float(h["relative_loss"].iloc[-1]), 4)}
                         for name, h in curves.items()}).T


def spectral_bias_checks(curves: dict[str, pd.DataFrame]) -> dict:
    """Named numbers of lesson 3: iterations fitted, final relative loss of the clean clip and of
    the noise, and the iterations each took to halve its loss (``bias/...``)."""
    clean_h, noise_h = curves.values()
    return {"bias/iterations": int(len(clean_h)), "bias/clean_final": float(clean_h["relative_loss"].iloc[-1]),
            "bias/noise_final": float(noise_h["relative_loss"].iloc[-1]),
            "bias/clean_to_half": iterations_to(clean_h, 0.5), "bias/noise_to_half": iterations_to(noise_h, 0.5)}
