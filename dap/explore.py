"""What the deep-prior explorer (notebook ``09_explore_deep_priors``) computes, without any widget.

The explorer fits one design (or the four designs in turn) to one corrupted clip and shows the fit
while it runs. This module holds everything but the buttons, so that it runs headless (papermill,
tests) exactly as it runs behind the ipywidgets UI of :mod:`dap.widgets`:

* :class:`Settings`: the choices a student makes (clip, corruption, design, size, budget);
* :func:`embedded_clip`, :func:`read_upload`, :func:`crop_loudest`: the clip, as a peak-normalised
  mono 16 kHz vector ``(L,)`` with ``L`` a multiple of 256 samples (two poolings over ``L / 64``
  STFT frames);
* :func:`make_problem`: the corruption (Gaussian noise of std ``sigma``, or gaps), a
  :class:`Problem`;
* :class:`LiveFit`: runs the fits through :func:`dap.tasks.denoise.restore` /
  :func:`dap.tasks.inpaint.restore` (so through :func:`dap.fit.fit`, no other training loop), in the
  calling thread or a background thread, calls ``on_update(snapshot)`` every few iterations and
  stops early when asked (the Stop button);
* :func:`progress_figure`, :func:`figure_png`, :func:`wav_bytes`: what the UI displays.

Costs on a 2-core CPU (README, measured): the paper's dense design costs ~1.05 s per iteration (bf16) on a
1 s clip at widths 35/70/140. The explorer's defaults (a 0.512 s clip, ``laptop`` widths 16/32/64,
the exponential-dilation design, 200 iterations) are sized for about a minute; the UI says so.
"""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
import soundfile as sf

from dap import metrics
from dap.core.audio import SAMPLE_RATE, check_audio, peak_normalise, resample
from dap.core.errors import AudioError, DapError
from dap.fit import FitConfig, FitResult
from dap.priors import DEFAULT_WIDTHS, DESIGN_LABELS, DESIGNS, build_prior, count_parameters
from dap.tasks import denoise, inpaint
from dap.core.text import one_line

#: Network sizes offered in the UI: widths per U-Net level. ``laptop`` is ours (not the paper's):
#: about a quarter of the paper's parameters and a third of its cost per iteration.
SIZES: dict[str, tuple[int, ...]] = {"laptop": (16, 32, 64), "paper": DEFAULT_WIDTHS, "tiny": (4, 8, 16)}
SIZE_NOTES = {
    "laptop": "laptop size (widths 16/32/64, our choice for a CPU; the paper uses 35/70/140)",
    "paper": "the paper's size (widths 35/70/140)",
    "tiny": "tiny (widths 4/8/16): seconds, for checking that things run, not for listening",
}
#: Clip lengths offered (seconds); each is a multiple of 256 samples at 16 kHz.
CLIP_SECONDS = (0.256, 0.512, 1.024, 2.048)
TASKS = ("denoise", "inpaint")
OUTPUT_RULES = ("last", "ema", "oracle")
OUTPUT_NOTES = {"last": "the last iterate (blind)", "ema": "moving average of the iterates (blind)",
                "oracle": "the best iterate against the clean clip (needs the answer)"}
#: Shortest usable upload (the STFT needs > 511 samples, the U-Net a multiple of 256).
MIN_UPLOAD_S = 0.25
BLOCK = 256  # L must be a multiple of this (hop 64 x two poolings)


class ExplorerError(DapError, ValueError):
    """A setting of the explorer is invalid; the message says which and what is allowed."""


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """The explorer's choices.

    dataset: an embedded data set (``digits``, ``speech``, ``piano``, ``drums``, ``noise``,
    ``stems`` = the mixture) or ``"upload"``; clip_index: position among the data set's clips
    sorted by id; seconds: length of the excerpt (the loudest window of the clip); task:
    ``denoise`` (add Gaussian noise of std ``sigma`` to the peak-normalised clip; ``sigma = 0``
    fits the clip as it is, with no clean reference) or ``inpaint`` (``n_gaps`` gaps of ``gap_s``
    seconds); design: one of :data:`dap.priors.DESIGNS`; widths: U-Net widths (see :data:`SIZES`);
    iterations: budget per design; update_every: redraw period in iterations; output: which
    selection rule the "restored" player plays at the end.
    """

    dataset: str = "digits"
    clip_index: int = 0
    seconds: float = 0.512
    task: str = "denoise"
    sigma: float = 0.1
    n_gaps: int = 1
    gap_s: float = 0.1
    design: str = "dilated_exp"
    widths: tuple[int, ...] = SIZES["laptop"]
    iterations: int = 200
    update_every: int = 10
    seed: int = 0
    precision: str = "auto"
    lr: float = 1e-3
    output: str = "last"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, not {self.task!r}")
        if self.design not in DESIGNS:
            problems.append(f"design must be one of {DESIGNS}, not {self.design!r}")
        if self.output not in OUTPUT_RULES:
            problems.append(f"output must be one of {OUTPUT_RULES}, not {self.output!r}")
        if not (self.iterations >= 1):
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if not (self.update_every >= 1):
            problems.append(f"update_every must be >= 1, got {self.update_every}")
        if not (0 <= self.sigma <= 1):
            problems.append(f"sigma must be in [0, 1] (the clip peaks at 1), got {self.sigma}")
        if self.seconds * SAMPLE_RATE < BLOCK * 16:
            problems.append(f"seconds must be at least {BLOCK * 16 / SAMPLE_RATE} s, got {self.seconds}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append(f"widths must be three positive channel counts, got {self.widths}")
        if problems:
            raise ExplorerError("; ".join(problems))

    @property
    def samples(self) -> int:
        """Clip length in samples, rounded to a multiple of 256."""
        return clip_samples(self.seconds)

    @property
    def size_name(self) -> str:
        """``laptop`` / ``paper`` / ``tiny``, or ``widths a/b/c`` for other widths."""
        for name, w in SIZES.items():
            if w == self.widths:
                return name
        return "widths " + "/".join(map(str, self.widths))

    @property
    def has_reference(self) -> bool:
        """Whether a clean reference exists (not for denoising with sigma 0: the clip as it is)."""
        return self.task == "inpaint" or self.sigma > 0

    def with_(self, **changes) -> "Settings":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def from_params(cls, p: dict) -> "Settings":
        """Settings from a resolved profile (keys named as the fields; others ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in p.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


def clip_samples(seconds: float) -> int:
    """``seconds`` at 16 kHz rounded to a multiple of 256 samples (at least 4096)."""
    return max(16, int(round(seconds * SAMPLE_RATE / BLOCK))) * BLOCK


# ----------------------------------------------------------------------------- clips
_CLIP_CACHE: dict[str, list] = {}


def embedded_ids(dataset: str) -> list[str]:
    """Ids of an embedded data set's clips, sorted (what ``clip_index`` indexes)."""
    return [c.id for c in _embedded(dataset)]


def _embedded(dataset: str) -> list:
    if dataset not in _CLIP_CACHE:
        from dap.data import load_clips

        _CLIP_CACHE[dataset] = sorted(load_clips(dataset), key=lambda c: c.id)
    return _CLIP_CACHE[dataset]


def embedded_clip(dataset: str, index: int) -> tuple[np.ndarray, str]:
    """Clip ``index`` of an embedded data set: ``(audio (L,) float32, label)``.

    ``stems`` gives the mixture of target and accompaniment. Raises :class:`ExplorerError` for an
    index out of range (naming the range).
    """
    clips = _embedded(dataset)
    if not 0 <= index < len(clips):
        raise ExplorerError(f"clip_index {index} is out of range: {dataset} has clips 0..{len(clips) - 1}")
    clip = clips[index]
    audio = clip.audio if clip.stems is None else clip.stems["target"] + clip.stems["accompaniment"]
    return np.asarray(audio, dtype=np.float32), f"{dataset}/{clip.id}"


def embedded_excerpt(dataset: str, index: int, seconds: float) -> tuple[np.ndarray, str]:
    """The loudest ``seconds`` of embedded clip ``index``, peak-normalised: ``((L,) float32, label)``."""
    audio, label = embedded_clip(dataset, index)
    x, start = crop_loudest(audio, clip_samples(seconds))
    where = f"{label} ({start / SAMPLE_RATE:.2f}-{(start + x.shape[0]) / SAMPLE_RATE:.2f} s)"
    return peak_normalise(x, name=where), where


def read_upload(content: bytes, name: str = "upload") -> np.ndarray:
    """Decode an uploaded audio file (any format soundfile reads: WAV, FLAC, OGG, MP3, ...).

    Returns mono float32 ``(L,)`` at 16 kHz. Raises :class:`AudioError` with one line naming the
    file for: an empty upload, bytes that are not audio, NaN/Inf samples, silence, or a clip
    shorter than :data:`MIN_UPLOAD_S`.
    """
    if not content:
        raise AudioError(f"{name}: the upload is empty (0 bytes)")
    try:
        data, sr = sf.read(io.BytesIO(bytes(content)), dtype="float32", always_2d=True)  # (L, C)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        reason = re.sub(r"^Error opening <[^>]*>: ", "", one_line(exc)).rstrip(".")
        raise AudioError(f"{name}: cannot be read as audio ({reason}); upload a WAV, FLAC, OGG or MP3 file") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: the file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name}: contains NaN or Inf samples")
    x = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        x = resample(x, sr, SAMPLE_RATE)
    if x.shape[0] < MIN_UPLOAD_S * SAMPLE_RATE:
        raise AudioError(f"{name}: only {x.shape[0] / SAMPLE_RATE:.3f} s long; upload at least {MIN_UPLOAD_S} s")
    if np.max(np.abs(x)) < 1e-6:
        raise AudioError(f"{name}: the audio is silent (peak below -120 dBFS); nothing to restore")
    return np.ascontiguousarray(x, dtype=np.float32)


def crop_loudest(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """The ``length``-sample window of ``x`` ``(L,)`` with the most energy, and its start.

    Windows start on multiples of 256 samples; the first loudest one wins. A clip shorter than
    ``length`` is zero-padded at the end (start 0).
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.shape[0] <= length:
        return np.pad(x, (0, length - x.shape[0])), 0
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.shape[0] - length + 1, BLOCK)
    best = int(starts[np.argmax(energy[starts + length] - energy[starts])])
    return x[best:best + length].copy(), best


# ----------------------------------------------------------------------------- the problem
@dataclass
class Problem:
    """One corrupted clip to restore.

    clean: ``(L,)`` peak-normalised reference, or None (fitting the clip as it is); observed:
    ``(L,)`` what the prior is fitted to; mask: the gaps (inpainting) or None; label: where the
    clip comes from.
    """

    clean: np.ndarray | None
    observed: np.ndarray
    mask: inpaint.GapMask | None
    label: str
    task: str

    @property
    def length(self) -> int:
        return int(self.observed.shape[0])

    @property
    def input_snr(self) -> float:
        """SNR of the observation against the clean clip (dB); NaN without a reference."""
        return metrics.snr(self.clean, self.observed) if self.clean is not None else float("nan")

    @property
    def score_key(self) -> str:
        """The history column the curve shows: ``snr``, ``snr_gaps`` (inpainting) or ``loss``."""
        if self.clean is None:
            return "loss"
        return "snr_gaps" if self.task == "inpaint" else "snr"


def make_problem(audio: np.ndarray, settings: Settings, label: str) -> Problem:
    """Crop ``audio`` ``(N,)`` to its loudest ``settings.seconds``, peak-normalise, corrupt.

    Denoising adds ``sigma * N(0, 1)`` noise drawn from ``settings.seed``
    (:func:`dap.tasks.denoise.add_gaussian_noise`); ``sigma = 0`` keeps the clip as it is and drops
    the reference. Inpainting zeroes ``n_gaps`` gaps of ``gap_s`` seconds placed from the seed
    (:func:`dap.tasks.inpaint.draw_gaps`). Raises :class:`AudioError` for a silent excerpt and
    :class:`dap.tasks.inpaint.MaskError` when the gaps do not fit.
    """
    x, start = crop_loudest(audio, settings.samples)
    where = f"{label} ({start / SAMPLE_RATE:.2f}-{(start + x.shape[0]) / SAMPLE_RATE:.2f} s)"
    x = peak_normalise(check_audio(x, where), name=where)
    if settings.task == "denoise":
        if settings.sigma == 0:
            return Problem(None, x, None, where, "denoise")
        return Problem(x, denoise.add_gaussian_noise(x, settings.sigma, settings.seed), None, where, "denoise")
    mask = inpaint.draw_gaps(x.shape[0], seed=settings.seed, n_gaps=settings.n_gaps, min_s=settings.gap_s,
                             max_s=settings.gap_s)
    return Problem(x, inpaint.apply_gaps(x, mask), mask, where, "inpaint")


def describe_budget(settings: Settings, designs: tuple[str, ...] | None = None) -> str:
    """One honest sentence on what the budget is (size, clip, iterations) and what it is not."""
    designs = designs or (settings.design,)
    params = ", ".join(f"{DESIGN_LABELS[d]} {count_parameters(build_prior(d, widths=settings.widths)) / 1e3:.0f}k"
                       for d in designs)
    frames = settings.samples // 64
    return (f"{settings.iterations} iterations per design, {SIZE_NOTES.get(settings.size_name, settings.size_name)}; "
            f"parameters: {params}; a {settings.samples / SAMPLE_RATE:.3f} s clip (STFT 2 x 512 x {frames}). "
            f"The paper fits 2000 iterations at widths 35/70/140 on a GPU: at a few hundred iterations the "
            f"SNR is usually still rising, so read the shapes and the ranking, not the paper's numbers.")


# ----------------------------------------------------------------------------- live fits
@dataclass
class Snapshot:
    """The state of a run at one moment (what the UI draws).

    state: ``running``, ``done``, ``stopped`` or ``failed``; design: the design being fitted;
    iteration / total: progress of that design; histories: design -> rows so far (``iteration,
    loss, lr`` and ``snr`` / ``snr_gaps`` / ``psnr`` when a reference exists); current: the
    design's latest output ``(L,)``; seconds_per_iteration: measured on this run; message: one line.
    """

    state: str
    design: str
    iteration: int
    total: int
    histories: dict[str, list[dict]]
    current: np.ndarray | None
    seconds_per_iteration: float
    message: str


class LiveFit:
    """Fit ``designs`` one after the other to ``problem``, reporting every ``update_every`` iterations.

    ``on_update(snapshot)`` is called at iteration 1, every ``settings.update_every`` iterations, at
    each design's last iteration and once at the end (state ``done`` / ``stopped`` / ``failed``).
    :meth:`stop` ends the current fit after its current iteration (what was computed is kept) and
    skips the remaining designs. :meth:`run` works in the calling thread; :meth:`start` in a
    daemon thread (so that a notebook keeps receiving button clicks); :meth:`wait` joins it and
    turns a keyboard interrupt (the kernel's stop button) into :meth:`stop`.
    """

    def __init__(self, problem: Problem, settings: Settings, designs: tuple[str, ...] | None = None,
                 on_update: Callable[[Snapshot], None] | None = None):
        self.problem = problem
        self.settings = settings
        self.designs = tuple(designs or (settings.design,))
        self.on_update = on_update
        self.results: dict[str, FitResult] = {}
        self.histories: dict[str, list[dict]] = {d: [] for d in self.designs}
        self.seconds_per_iteration: dict[str, float] = {}
        self.n_updates = 0
        self.state = "ready"
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: np.ndarray | None = None

    # -- control
    def stop(self) -> None:
        """Ask the running fit to stop after its current iteration."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> threading.Thread:
        """Run in a background daemon thread; returns it."""
        if self.running:
            raise ExplorerError("a fit is already running: stop it first")
        self._thread = threading.Thread(target=self._run_quietly, name="dap-live-fit", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> "LiveFit":
        """Join the background thread. A KeyboardInterrupt while waiting stops the fit cleanly."""
        if self._thread is None:
            return self
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)
                if deadline is not None and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception:  # already recorded in self.state / self.error and reported to on_update
            pass

    # -- the work
    def run(self) -> "LiveFit":
        """Fit every design in the calling thread. Errors are reported (state ``failed``) and raised."""
        self.state = "running"
        try:
            for design in self.designs:
                if self.stopped:
                    break
                self._fit_one(design)
                result = self.results[design]
                if not result.ok:
                    raise DapError(f"{DESIGN_LABELS[design]}: {result.error}")
            self.state = "stopped" if self.stopped else "done"
        except Exception as exc:
            self.state = "failed"
            self.error = one_line(exc)
            self._report(self.designs[-1] if not self.results else list(self.results)[-1], final=True)
            raise
        self._report(list(self.results)[-1] if self.results else self.designs[0], final=True)
        return self

    def _fit_one(self, design: str) -> None:
        s, p = self.settings, self.problem
        config = FitConfig(iterations=s.iterations, lr=s.lr, precision=s.precision, progress=False)
        history = self.histories[design]
        stamps: list[float] = []

        def on_step(it: int, info: dict) -> None:
            stamps.append(time.perf_counter())
            history.append({k: v for k, v in info.items() if k != "waveforms"})
            self._current = info["waveforms"][0]
            if len(stamps) > 2:  # the first iterations include one-off setup costs
                self.seconds_per_iteration[design] = float(np.median(np.diff(stamps[1:])))
            if it == 1 or it % s.update_every == 0 or it == s.iterations:
                self._report(design)

        common = dict(design=design, config=config, seed=s.seed, prior_opts={"widths": s.widths},
                      on_step=on_step, stop=self._stop.is_set)
        if p.task == "inpaint":
            result = inpaint.restore(p.observed, p.mask, clean=p.clean, **common)
        else:
            result = denoise.restore(p.observed, clean=p.clean, **common)
        self.results[design] = result

    def _report(self, design: str, final: bool = False) -> None:
        if self.on_update is None:
            return
        self.n_updates += 1
        hist = self.histories.get(design, [])
        it = hist[-1]["iteration"] if hist else 0
        if final and design in self.results:
            self._current = self.output(design)
        self.on_update(Snapshot(state=self.state if final else "running", design=design, iteration=it,
                                total=self.settings.iterations, histories=self.histories,
                                current=self._current, seconds_per_iteration=self.seconds_per_iteration.get(design, float("nan")),
                                message=self.describe(design, it, final)))

    # -- reading the outcome
    def output(self, design: str | None = None, rule: str | None = None) -> np.ndarray:
        """Restored waveform ``(L,)`` of ``design`` (default: the last one fitted) under ``rule``
        (default ``settings.output``; ``oracle`` falls back to ``last`` without a reference)."""
        design = design or list(self.results)[-1]
        result = self.results[design]
        rule = rule or self.settings.output
        if rule not in result.outputs:
            rule = "last" if "last" in result.outputs else next(iter(result.outputs))
        return result.outputs[rule][0]

    def history(self, design: str) -> pd.DataFrame:
        """Rows of ``design`` so far as a DataFrame (``iteration, loss, lr, snr, ...``)."""
        return pd.DataFrame(self.histories[design])

    def describe(self, design: str, iteration: int, final: bool = False) -> str:
        """One status line: progress, speed and time left, or the outcome, with the current score."""
        if final and self.state == "failed":
            return f"failed: {self.error}"
        label = DESIGN_LABELS[design]
        spi = self.seconds_per_iteration.get(design, float("nan"))
        speed = f", {spi:.2f} s/iteration" if np.isfinite(spi) else ""
        parts = []
        if final:
            n = len(self.results)
            parts.append(f"{self.state}: {n} design{'s' if n != 1 else ''} fitted; {label} "
                         f"reached iteration {iteration}/{self.settings.iterations}{speed}")
        else:
            pos = f" (design {self.designs.index(design) + 1}/{len(self.designs)})" if len(self.designs) > 1 else ""
            left = (self.settings.iterations - iteration) * spi
            eta = f", about {left:.0f} s left" if np.isfinite(left) else ""
            parts.append(f"running {label}{pos}: iteration {iteration}/{self.settings.iterations}{speed}{eta}")
        hist = self.histories.get(design, [])
        key = self.problem.score_key
        if hist and key in hist[-1]:
            value = hist[-1][key]
            if key == "loss":
                parts.append(f"loss {value:.3g} (no clean reference, so no SNR)")
            elif key == "snr_gaps":
                parts.append(f"SNR inside the gaps {_db(value)} dB (empty gaps: 0 dB)")
            else:
                parts.append(f"SNR {_db(value)} dB (noisy input {_db(self.problem.input_snr)} dB)")
        return "; ".join(parts)

    def metrics(self, prefix: str = "") -> dict:
        """Named scalars of the run for ``metrics.json``: state, designs, iterations, updates, scores."""
        key = self.problem.score_key
        out = {"state": self.state, "n_designs": len(self.results), "n_updates": self.n_updates,
               "clip": self.problem.label, "score": key,
               "iterations_done": min((r.iterations for r in self.results.values()), default=0)}
        if self.problem.clean is not None:
            out["input_snr_db"] = round(self.problem.input_snr, 3)
        for design, result in self.results.items():
            h = result.history
            out[f"{design}/iterations"] = result.iterations
            out[f"{design}/seconds_per_iteration"] = round(self.seconds_per_iteration.get(
                design, result.seconds / max(result.iterations, 1)), 4)
            if key in h and len(h):
                out[f"{design}/last_{key}"] = round(float(h[key].iloc[-1]), 4)
        return {f"{prefix}{k}": v for k, v in out.items()}

    def summary(self) -> pd.DataFrame:
        """One row per fitted design: parameters, iterations, s/iteration, last / best score."""
        rows = []
        key = self.problem.score_key
        for design, result in self.results.items():
            h = result.history
            row = {"design": DESIGN_LABELS[design],
                   "parameters": count_parameters(build_prior(design, widths=self.settings.widths)),
                   "iterations": result.iterations,
                   "s/iteration": round(self.seconds_per_iteration.get(design, result.seconds / max(result.iterations, 1)), 3)}
            if key in h and len(h):
                row[f"last {key}"] = round(float(h[key].iloc[-1]), 2)
                best = int(h[key].idxmax()) if key != "loss" else int(h[key].idxmin())
                row[f"best {key}"] = round(float(h[key].iloc[best]), 2)
                row["best at iteration"] = int(h["iteration"].iloc[best])
            rows.append(row)
        return pd.DataFrame(rows)


def _db(value: float) -> str:
    """``value`` to one decimal, without a "-0.0"."""
    return f"{round(float(value), 1) + 0.0:.1f}"



# ----------------------------------------------------------------------------- display
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
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from dap.plots import log_magnitude, spectrogram

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
    from matplotlib.backends.backend_agg import FigureCanvasAgg

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
