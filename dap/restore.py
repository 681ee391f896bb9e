"""Restore your own recording: deep-prior denoising or gap inpainting of a whole audio file.

What ``python -m dap restore`` runs. A file of any length, sample rate and channel count is
processed in windows, one deep-prior fit (:func:`dap.tasks.denoise.restore` or
:func:`dap.tasks.inpaint.restore`, i.e. :func:`dap.fit.fit`) per window and channel:

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
  iterations (the former default, tuned on the sigma-0.1 digits at ~1 dB input SNR) returned
  speech at 12.4 dB input SNR at 9.7 dB, worse than its input, because with less noise the fit
  needs more iterations before it has reproduced the speech. ``last`` (the final iterate of
  ``--iterations``, default 200) and ``ema`` (moving average of the outputs, decay 0.99) remain as
  options. Inpainting has no noise to measure: it always uses a fixed budget (``last``, or ``ema``).

Errors a user can cause (unreadable, empty, silent, NaN, too short, bad gaps, unwritable output)
raise a :class:`~dap.core.errors.DapError` whose message names the file; :mod:`dap.cli` prints it as
one line.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import soundfile as sf

from dap.core.errors import AudioError, DapError, FitDiverged
from dap.core.text import one_line

#: The rate every prior is fitted at.
FIT_SR = 16000
#: Defaults of the command line (see the module docstring for why).
DEFAULT_TASK = "denoise"
DEFAULT_DESIGN = "dilated_exp_dense"
DEFAULT_ITERATIONS = 200        # the fixed budget of last / ema (and of inpainting)
DEFAULT_SELECTION = "discrepancy"
BLIND_SELECTIONS = ("discrepancy", "last", "ema")
#: The discrepancy rule's cap (iterations per window) and tolerance (loss <= tolerance x floor):
#: docs/stopping.md gives the measurements they come from.
DEFAULT_MAX_ITERATIONS = 1500
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
#: Reading block of the streaming passes, in samples (frames x channels).
BLOCK = 1 << 18

_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".aif": "AIFF",
            ".aiff": "AIFF", ".aifc": "AIFF", ".au": "AU", ".snd": "AU", ".caf": "CAF", ".w64": "W64",
            ".rf64": "RF64", ".mp3": "MP3"}


class RestoreError(DapError, ValueError):
    """Options of a restoration that cannot work (gaps outside the file, window too small...)."""


# ----------------------------------------------------------------------------- input
@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` and :func:`scan` learn about an input file."""

    path: Path
    sr: int
    channels: int
    frames: int                  # counted while reading (a truncated file counts what is there)
    format: str
    subtype: str
    peaks: tuple[float, ...] = ()  # max |x| per channel

    @property
    def seconds(self) -> float:
        return self.frames / self.sr


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` and read its header: AudioError (naming the file) when it is not usable audio."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # LibsndfileError, RuntimeError, TypeError, OSError...
        raise AudioError(f"{path}: cannot be read as audio ({one_line(exc)})") from None
    if info.channels < 1:
        raise AudioError(f"{path}: the file has no channels")
    if info.channels > MAX_CHANNELS:
        raise AudioError(f"{path}: {info.channels} channels; restore handles at most {MAX_CHANNELS} (one fit per "
                         f"channel and window)")
    if not MIN_SR <= info.samplerate <= MAX_SR:
        raise AudioError(f"{path}: unsupported sample rate {info.samplerate} Hz (accepted: {MIN_SR}-{MAX_SR} Hz)")
    return AudioInfo(path=path, sr=int(info.samplerate), channels=int(info.channels), frames=int(info.frames),
                     format=str(info.format), subtype=str(info.subtype))


def scan(path: str | os.PathLike, allow_silent: bool = False) -> AudioInfo:
    """Read the whole file once, block by block: count frames, measure each channel's peak and
    reject NaN/Inf samples, empty and (unless ``allow_silent``) all-zero files. Memory: one block."""
    info = probe(path)
    peaks = np.zeros(info.channels)
    frames = 0
    for block in _blocks(info.path):
        bad = ~np.isfinite(block)
        if bad.any():
            frame, channel = np.argwhere(bad)[0]
            raise AudioError(f"{info.path}: contains NaN or Inf samples (first at {(frames + frame) / info.sr:.3f} s, "
                             f"channel {channel + 1})")
        peaks = np.maximum(peaks, np.abs(block).max(axis=0))
        frames += block.shape[0]
    if frames == 0:
        raise AudioError(f"{info.path}: the file holds no samples")
    if not allow_silent and not peaks.any():
        raise AudioError(f"{info.path}: the audio is silent (all samples are zero)")
    if frames / info.sr < MIN_SECONDS:
        raise AudioError(f"{info.path}: too short to restore: {frames} sample(s) = {1000 * frames / info.sr:.2f} ms "
                         f"(at least {1000 * MIN_SECONDS:.0f} ms are needed)")
    return AudioInfo(path=info.path, sr=info.sr, channels=info.channels, frames=frames, format=info.format,
                     subtype=info.subtype, peaks=tuple(float(p) for p in peaks))


def _blocks(path: Path, dtype: str = "float32") -> Iterator[np.ndarray]:
    """Blocks ``(frames, C)`` of ``path`` as ``dtype``; read errors -> AudioError naming the file."""
    try:
        with sf.SoundFile(str(path)) as f:
            frames = max(256, BLOCK // max(1, f.channels))
            while True:
                block = f.read(frames, dtype=dtype, always_2d=True)
                if block.shape[0] == 0:
                    return
                yield block
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{path}: cannot be read as audio ({one_line(exc)})") from None


class _Reader:
    """Sequential reads of ``[a, b)`` spans with non-decreasing ``a`` (no seeking needed), keeping
    only the samples still ahead: ``get(a, b) -> (C, b - a)`` float32, zero past the end."""

    def __init__(self, path: Path, channels: int):
        self._it = _blocks(path)
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._start = 0  # frame index of _buf[:, 0]
        self._done = False

    def get(self, a: int, b: int) -> np.ndarray:
        if a < self._start:
            raise ValueError("reads must not go backwards")
        while self._start + self._buf.shape[1] < b and not self._done:
            block = next(self._it, None)
            if block is None:
                self._done = True
                break
            self._buf = np.concatenate([self._buf, block.T], axis=1)
            self._drop_before(a)  # skipping ahead keeps only one block in memory
        self._drop_before(a)
        if self._start < a:  # a lies past the end of the file
            return np.zeros((self._buf.shape[0], b - a), dtype=np.float32)
        out = self._buf[:, : b - a]
        if out.shape[1] < b - a:
            out = np.pad(out, ((0, 0), (0, b - a - out.shape[1])))
        return out

    def _drop_before(self, a: int) -> None:
        cut = min(max(0, a - self._start), self._buf.shape[1])
        if cut:
            self._buf = self._buf[:, cut:]
            self._start += cut


# ----------------------------------------------------------------------------- output
def output_format(path: str | os.PathLike, subtype: str) -> tuple[str, str]:
    """``(format, subtype)`` to write ``path``: the format follows the suffix; the input's
    ``subtype`` is kept when that format can hold it, else the format's default."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give an output file name")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None or fmt not in sf.available_formats():
        known = ", ".join(sorted({s for s, f in _FORMATS.items() if f in sf.available_formats()}))
        raise AudioError(f"{path}: cannot write this format (suffix {path.suffix or 'missing'!r}); use one of {known}")
    if not (subtype and sf.check_format(fmt, subtype)):
        subtype = sf.default_subtype(fmt)
    return fmt, subtype


#: libsndfile 1.2.2 + libvorbis crash (SIGSEGV, no error) when encoding Vorbis above this rate
#: (found by fuzzing; 200000 Hz works, 200001 Hz crashes).
VORBIS_MAX_SR = 200000


def check_encodable(path: str | os.PathLike, fmt: str, subtype: str, sr: int) -> None:
    """AudioError for an output the encoder cannot take, *before* libsndfile is asked to."""
    if subtype == "VORBIS" and sr > VORBIS_MAX_SR:
        raise AudioError(f"{path}: Ogg Vorbis cannot hold {sr} Hz audio (at most {VORBIS_MAX_SR} Hz); write "
                         f".wav or .flac instead")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` (after fsync) when the block succeeds
    and removed when it fails: readers see the old file or the complete new one, never a part.
    The streaming twin of :func:`dap.core.files.atomic_write_bytes`. OSError -> AudioError naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory; give an output file name")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise AudioError(f"{path}: cannot write the output: {blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise AudioError(f"{path}: cannot write the output ({one_line(exc)})") from None
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise AudioError(f"{path}: cannot write the output ({one_line(exc)})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


class _Writer:
    """Block writer into an open SoundFile. PCM output is clipped to [-1, 1] and rounded to the
    nearest step here (libsndfile truncates, so float noise of the processing would cost 1 LSB)."""

    def __init__(self, f: sf.SoundFile, subtype: str, path: Path):
        self.f, self.path, self.frames = f, path, 0
        self.pcm = subtype.startswith("PCM") or subtype in ("ULAW", "ALAW")
        self.step = 2.0 ** (_PCM_BITS[subtype] - 1) if subtype in _PCM_BITS else None

    def write(self, y: np.ndarray) -> None:
        """y: ``(C, n)``."""
        if y.shape[1] == 0:
            return
        if self.pcm:
            y = np.clip(y, -1.0, 1.0)
        if self.step:
            y = np.round(y * self.step) / self.step
        try:
            self.f.write(np.ascontiguousarray(y.T))
        except Exception as exc:
            raise AudioError(f"{self.path}: cannot write the output ({one_line(exc)})") from None
        self.frames += y.shape[1]


# ----------------------------------------------------------------------------- gaps
def parse_gaps(text: str) -> list[tuple[float, float]]:
    """``"1.20-1.35,2.0-2.1"`` -> ``[(1.2, 1.35), (2.0, 2.1)]`` seconds, sorted, overlaps merged.
    RestoreError on anything else (naming the bad part)."""
    if text is None or not str(text).strip():
        raise RestoreError("--gaps is empty: give START-END[,START-END...] in seconds, e.g. 1.20-1.35")
    spans = []
    number = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"
    for part in str(text).split(","):
        m = re.fullmatch(number + "-" + number, part)
        if not m:
            raise RestoreError(f"cannot read gap {part.strip()!r}: expected START-END in seconds, e.g. 1.20-1.35")
        start, end = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise RestoreError(f"gap {part.strip()!r}: the end must come after the start")
        spans.append((start, end))
    spans.sort()
    merged = [spans[0]]
    for s, e in spans[1:]:
        if s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def gaps_to_samples(gaps: list[tuple[float, float]], sr: int, frames: int, path: Path | str = "input") -> list[tuple[int, int]]:
    """Gap times (s) -> sample spans ``[(start, end), ...]`` (end exclusive) of a file of ``frames``."""
    out = []
    duration = frames / sr
    for s, e in gaps:
        if s >= duration:
            raise RestoreError(f"{path}: gap {s:g}-{e:g} s starts after the end of the file ({duration:.3f} s)")
        if e > duration + 1.0 / sr:
            raise RestoreError(f"{path}: gap {s:g}-{e:g} s ends after the end of the file ({duration:.3f} s)")
        a, b = int(math.floor(s * sr)), min(frames, int(math.ceil(e * sr)))
        if b > a:
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(b, out[-1][1]))
            else:
                out.append((a, b))
    return out


# ----------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class WindowPlan:
    """Window geometry in the file's samples for a 16 kHz fit window of ``window16`` samples."""

    sr: int
    window16: int
    overlap16: int

    @property
    def margin(self) -> int:
        """Resampling context on each side, in the file's samples (0 at 16 kHz)."""
        return 0 if self.sr == FIT_SR else int(math.ceil(RESAMPLE_MARGIN * self.sr / FIT_SR))

    @property
    def core(self) -> int:
        """Samples of the file one window restores (the fit window minus the margins)."""
        if self.sr == FIT_SR:
            return self.window16
        return max(1, int(math.floor((self.window16 - 2 * RESAMPLE_MARGIN - 8) * self.sr / FIT_SR)))

    @property
    def overlap(self) -> int:
        return max(1, int(round(self.overlap16 * self.sr / FIT_SR)))


def check_window(window16: int, overlap16: int) -> None:
    """RestoreError unless the window is a multiple of 256 samples >= 2048 and the overlap fits."""
    if window16 < 2048 or window16 % 256:
        raise RestoreError(f"the window must be a multiple of 256 samples at 16 kHz, at least 2048 (0.128 s); "
                           f"got {window16}")
    if not 0 < overlap16 <= (window16 - 2 * RESAMPLE_MARGIN) // 2:
        raise RestoreError(f"the overlap must be positive and at most half the window; got {overlap16} of {window16}")


def plan_windows(n: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[(start, end), ...]`` covering ``[0, n)``: one when ``n <= length``, else the
    fewest windows of ``length`` whose neighbours overlap by at least ``overlap``, spread evenly
    (the first starts at 0, the last ends at ``n``)."""
    if n <= length:
        return [(0, n)]
    hop = length - overlap
    k = 1 + math.ceil((n - length) / hop)
    starts = [round(i * (n - length) / (k - 1)) for i in range(k)]
    return [(s, s + length) for s in starts]


def crossfade_weights(windows: list[tuple[int, int]], k: int, ramp: int) -> np.ndarray:
    """Weights ``(end - start,)`` of window ``k`` for the overlap-add: 1, with a linear ramp of
    ``ramp`` samples (strictly positive) at each side that has a neighbour."""
    a, b = windows[k]
    w = np.ones(b - a)
    r = min(ramp, (b - a) // 2)
    if r > 0:
        up = (np.arange(r) + 0.5) / r
        if k > 0:
            w[:r] = up
        if k < len(windows) - 1:
            w[-r:] = np.minimum(w[-r:], up[::-1])
    return w


def group_gaps(spans: list[tuple[int, int]], n: int, core: int, context: int) -> list[tuple[tuple[int, int], list[tuple[int, int]]]]:
    """Inpainting windows: ``[((start, end), [gap spans it fills]), ...]`` in file samples.

    Consecutive gaps share a window while they fit in it with ``context`` observed samples on both
    sides; each window is centred on its gaps (shifted inside ``[0, n)``). RestoreError for a gap
    too long for any window.
    """
    limit = core - 2 * context
    groups: list[list[tuple[int, int]]] = []
    for s, e in spans:
        if e - s > limit:
            raise RestoreError(f"a gap of {e - s} samples is longer than one window can fill ({max(limit, 0)} samples "
                               f"with {context} of context on each side); pass a longer --window")
        if groups and e - groups[-1][0][0] <= limit:
            groups[-1].append((s, e))
        else:
            groups.append([(s, e)])
    out = []
    for g in groups:
        if n <= core:
            out.append(((0, n), g))
            continue
        centre = (g[0][0] + g[-1][1]) // 2
        start = min(max(0, centre - core // 2), n - core)
        out.append(((start, start + core), g))
    return out


# ----------------------------------------------------------------------------- resampling
_RESAMPLERS: dict = {}


def _resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """``(L,)`` float32 resampled with a cached torchaudio kernel."""
    if orig == new:
        return x.astype(np.float32, copy=False)
    import torch
    import torchaudio

    from dap.core.audio import resample_ratio

    key = (orig, new)
    if key not in _RESAMPLERS and len(_RESAMPLERS) >= 8:  # one file needs two; keep memory bounded
        _RESAMPLERS.clear()
    if key not in _RESAMPLERS:  # odd rates use an approximate ratio, and its exact inverse on the way back
        o, n = resample_ratio(orig, new) if orig != FIT_SR else resample_ratio(new, orig)[::-1]
        _RESAMPLERS[key] = torchaudio.transforms.Resample(o, n)
    with torch.no_grad():
        return _RESAMPLERS[key](torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def fit_length(n16: int) -> int:
    """Samples a fit needs for ``n16`` samples at 16 kHz: a multiple of 256, at least 1024."""
    return max(1024, -(-n16 // 256) * 256)


# ----------------------------------------------------------------------------- per-window processing
class WindowFn(Protocol):
    """Restore one 16 kHz window: ``(x (L,), mask or None, seed) -> (L,)``; L a multiple of 256.
    ``mask`` (a :class:`dap.tasks.inpaint.GapMask`) marks the gaps for inpainting."""

    def __call__(self, x: np.ndarray, mask, seed: int) -> np.ndarray: ...


@dataclass
class DeepPrior:
    """The window function of the command line: one :func:`dap.fit.fit` per window through
    :mod:`dap.tasks` (the paper's optimiser: Adam ``lr``, x0.1 every 500 iterations; constant up to the
    cap with the discrepancy rule)."""

    design: str = DEFAULT_DESIGN
    iterations: int | None = None  # last / ema / inpainting: the budget (default 200); discrepancy: the cap (1500)
    selection: str = DEFAULT_SELECTION
    widths: tuple[int, ...] | None = None
    precision: str = "auto"
    device: str | None = None
    lr: float = 1e-3
    on_step: Callable[[int, dict], None] | None = None
    noise: str = "auto"            # estimator of dap.noise (denoising)
    tolerance: float = DEFAULT_TOLERANCE
    fits: list[WindowFit] = field(default_factory=list)  # one entry per fit, in order

    def __post_init__(self):
        from dap.priors import ALL_DESIGNS

        if self.design not in ALL_DESIGNS:
            raise RestoreError(f"unknown design {self.design!r}; choose one of {', '.join(ALL_DESIGNS)}")
        if self.selection not in BLIND_SELECTIONS:
            raise RestoreError(f"selection must be one of {BLIND_SELECTIONS} (there is no clean reference for "
                               f"'oracle'); got {self.selection!r}")
        if self.iterations is not None and int(self.iterations) < 1:
            raise RestoreError(f"iterations must be at least 1, got {self.iterations}")
        from dap.noise import NOISE_KINDS

        if self.noise not in NOISE_KINDS:
            raise RestoreError(f"noise estimator must be one of {', '.join(NOISE_KINDS)}; got {self.noise!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise RestoreError(f"the discrepancy tolerance must be a positive number, got {self.tolerance!r}")

    def rule(self, task: str) -> str:
        """The rule a ``task`` window uses: inpainting has no noise floor, so not ``discrepancy``."""
        return "last" if task == "inpaint" and self.selection == "discrepancy" else self.selection

    def max_iterations(self, task: str) -> int:
        """The most iterations one window of ``task`` may take."""
        if self.iterations is not None:
            return int(self.iterations)
        return DEFAULT_MAX_ITERATIONS if self.rule(task) == "discrepancy" else DEFAULT_ITERATIONS

    def __call__(self, x: np.ndarray, mask, seed: int) -> np.ndarray:
        from dap.fit import FitConfig
        from dap.tasks import denoise, inpaint

        task = "denoise" if mask is None else "inpaint"
        rule = self.rule(task)
        cap = self.max_iterations(task)
        # discrepancy: a constant learning rate up to the cap. With the paper's x0.1 at 500 the loss
        # flattens above the noise floor (measured with widths 8/16/32 at 20 dB input SNR: loss 21 x
        # the floor at 500, still 19 x at 1200), so the rule would only ever stop at the cap.
        lr_step = max(cap, 500) if rule == "discrepancy" else 500
        cfg = FitConfig(iterations=cap, lr=self.lr, lr_step=lr_step, precision=self.precision, progress=False,
                        device=self.device, discrepancy_tolerance=self.tolerance,
                        stop_at_discrepancy=rule == "discrepancy")
        opts = {"widths": tuple(self.widths)} if self.widths else None
        kw = {"on_step": self.on_step} if self.on_step else {}
        estimate = None
        if mask is None:
            from dap.noise import estimate_noise

            estimate = estimate_noise(x, self.noise)  # the window alone: no reference
            res = denoise.restore(x, self.design, cfg, seed=seed, prior_opts=opts, noise=estimate, **kw)
        else:
            res = inpaint.restore(x, mask, self.design, cfg, seed=seed, prior_opts=opts, **kw)
        if not res.ok:
            raise FitDiverged(res.error)
        reached = bool(res.extra.get("discrepancy_reached", False))
        ratio = float(res.history["loss"].iloc[-1]) / estimate.loss_floor if estimate is not None else float("nan")
        keep = rule == "discrepancy" and not reached and ratio >= KEEP_INPUT_RATIO
        self.fits.append(WindowFit(rule=rule, iterations=res.best_iteration[rule], cap=cfg.iterations,
                                   noise=estimate, reached=reached, loss_ratio=ratio, kept_input=keep))
        return x.copy() if keep else res.outputs[rule][0]


@dataclass(frozen=True)
class WindowFit:
    """What one window's fit did: its rule, the iteration its output comes from, the cap, and for
    denoising the noise estimate, whether the residual reached its floor, and whether the window was
    left as the input (:data:`KEEP_INPUT_RATIO`)."""

    rule: str
    iterations: int
    cap: int
    noise: object = None  # dap.noise.NoiseEstimate
    reached: bool = False
    loss_ratio: float = float("nan")  # final loss / estimated floor
    kept_input: bool = False          # the cap came first with loss >= KEEP_INPUT_RATIO x floor

    def describe(self) -> str:
        text = f"{self.iterations} iterations"
        if self.rule == "discrepancy":
            text += (" (residual reached the noise floor)" if self.reached else
                     f" (the cap: the residual is still {self.loss_ratio:.2f} x the noise floor")
            if not self.reached:
                text += ("; the window is left as the input, the prior's output would be worse)" if self.kept_input
                         else ")")
        else:
            text += f" ({self.rule} of a fixed budget)"
        if self.noise is not None:
            text += f"; {self.noise.describe()}"
        return text


@dataclass
class RestoreReport:
    """What :func:`restore_file` did."""

    input: AudioInfo
    output: Path
    task: str
    format: str
    subtype: str
    windows: int
    fits: int
    skipped_silent: int = 0
    failed: list[str] = field(default_factory=list)  # windows left unprocessed, with the reason
    seconds: float = 0.0

    def summary(self) -> str:
        i = self.input
        verb = {"denoise": "denoised", "inpaint": "inpainted"}[self.task]
        text = (f"{self.output}: {verb} {i.seconds:.2f} s, {i.channels} channel(s) at {i.sr} Hz "
                f"({self.format} {self.subtype}); {self.fits} fit(s) over {self.windows} window(s) in "
                f"{self.seconds:.1f} s")
        if self.skipped_silent:
            text += f"; {self.skipped_silent} silent window(s) left silent"
        if self.failed:
            text += f"; {len(self.failed)} fit(s) diverged, their windows left as the input"
        return text


def estimate_fits(info: AudioInfo, task: str, window16: int = DEFAULT_WINDOW, overlap16: int = DEFAULT_OVERLAP,
                  gaps: list[tuple[float, float]] | None = None) -> int:
    """Fits a restoration will run (windows x channels), before running them."""
    plan = WindowPlan(info.sr, window16, overlap16)
    if task == "denoise":
        return len(plan_windows(info.frames, plan.core, plan.overlap)) * info.channels
    spans = gaps_to_samples(gaps or [], info.sr, info.frames, info.path)
    return len(group_gaps(spans, info.frames, plan.core, _context(plan, info.sr))) * info.channels


def _context(plan: WindowPlan, sr: int) -> int:
    return min(int(round(GAP_CONTEXT_S * sr)), plan.core // 4)


def restore_file(inp: str | os.PathLike, out: str | os.PathLike, task: str = DEFAULT_TASK,
                 gaps: list[tuple[float, float]] | str | None = None, process: WindowFn | None = None,
                 window16: int = DEFAULT_WINDOW, overlap16: int = DEFAULT_OVERLAP, seed: int = 0,
                 progress: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None) -> RestoreReport:
    """Restore the audio file ``inp`` into ``out`` (see the module docstring).

    task: ``"denoise"`` or ``"inpaint"`` (then ``gaps``: ``[(start_s, end_s), ...]`` or the
    ``--gaps`` text). process: the window function (default :class:`DeepPrior` with its defaults).
    progress(n) is called with the number of fits finished; log(text) with warnings.
    Everything that can be checked is checked before the first fit: the input (readable, finite,
    not silent, long enough), the gaps, and that ``out`` can be created.
    """
    t0 = time.perf_counter()
    if task not in ("denoise", "inpaint"):
        raise RestoreError(f"task must be 'denoise' or 'inpaint', not {task!r}")
    check_window(window16, overlap16)
    inp, out = Path(inp), Path(out)
    if task == "inpaint":
        if gaps is None:
            raise RestoreError("inpainting needs the gaps to fill: --gaps START-END[,START-END...] in seconds")
        gaps = parse_gaps(gaps) if isinstance(gaps, str) else parse_gaps(",".join(f"{s}-{e}" for s, e in gaps))
    elif gaps:
        raise RestoreError("--gaps only applies to --task inpaint")
    info = scan(inp)
    fmt, subtype = output_format(out, info.subtype)
    check_encodable(out, fmt, subtype, info.sr)
    if fmt == "WAV" and info.frames * info.channels * 8 > 2 ** 32 - 2 ** 20:
        fmt = "RF64"  # a WAV header cannot describe more than 4 GiB
    process = process or DeepPrior()
    plan = WindowPlan(info.sr, window16, overlap16)
    spans = gaps_to_samples(gaps, info.sr, info.frames, inp) if task == "inpaint" else []
    warn = log or (lambda text: print(text, file=sys.stderr))
    report = RestoreReport(input=info, output=out, task=task, format=fmt, subtype=subtype, windows=0, fits=0)
    with atomic_output(out) as tmp:
        try:
            f = sf.SoundFile(str(tmp), "w", samplerate=info.sr, channels=info.channels, format=fmt, subtype=subtype)
        except Exception as exc:
            raise AudioError(f"{out}: cannot write {fmt} {subtype} ({one_line(exc)})") from None
        with f:
            writer = _Writer(f, subtype, out)
            runner = _Segments(info, plan, process, seed, report, progress, warn)
            if task == "denoise":
                _denoise_stream(info, plan, runner, writer)
            else:
                _inpaint_stream(info, plan, spans, runner, writer)
        if writer.frames != info.frames:
            raise AudioError(f"{out}: wrote {writer.frames} frames instead of {info.frames}")
    report.seconds = time.perf_counter() - t0
    return report


class _Segments:
    """Fits one file segment per channel: normalise, resample to 16 kHz, fit, back."""

    def __init__(self, info: AudioInfo, plan: WindowPlan, process: WindowFn, seed: int, report: RestoreReport,
                 progress, warn):
        self.info, self.plan, self.process, self.seed = info, plan, process, seed
        self.report, self.progress, self.warn = report, progress, warn

    def run(self, seg: np.ndarray, offset: int, index: int, gaps: list[tuple[int, int]] | None = None) -> np.ndarray:
        """seg ``(C, len)`` starting at file sample ``offset``; gaps (file samples) for inpainting.
        Returns the restored ``(C, len)``."""
        out = np.empty_like(seg)
        self.report.windows += 1
        for c in range(seg.shape[0]):
            peak = self.info.peaks[c]
            x = seg[c]
            if gaps is not None:
                x = x.copy()
                for s, e in gaps:
                    x[max(s - offset, 0): max(e - offset, 0)] = 0.0
            if peak == 0 or not np.any(x):
                out[c] = 0.0
                self.report.skipped_silent += 1
            else:
                seed = (self.seed * 1_000_003 + index * 1009 + c) & 0x7FFFFFFF
                try:
                    out[c] = self._fit(x / peak, offset, gaps, seed) * peak
                    self.report.fits += 1
                except FitDiverged as exc:
                    where = f"{offset / self.info.sr:.2f}-{(offset + seg.shape[1]) / self.info.sr:.2f} s, channel {c + 1}"
                    self.report.failed.append(f"{where}: {exc}")
                    self.warn(f"{self.info.path}: the fit of {where} diverged ({exc}); that window is left as the input")
                    out[c] = x
            if self.progress:
                self.progress(1)
        return out

    def _fit(self, x: np.ndarray, offset: int, gaps, seed: int) -> np.ndarray:
        sr = self.info.sr
        x16 = _resample(x, sr, FIT_SR)
        n16 = x16.shape[0]
        length = fit_length(n16)
        x16 = np.pad(x16, (0, length - n16))
        mask = None
        if gaps is not None:
            from dap.tasks.inpaint import GapMask

            spans16 = []
            for s, e in gaps:
                a = max(0, int(math.floor((s - offset) * FIT_SR / sr)))
                b = min(n16, int(math.ceil((e - offset) * FIT_SR / sr)))
                if b > a:
                    if spans16 and a <= spans16[-1][1]:
                        spans16[-1] = (spans16[-1][0], max(b, spans16[-1][1]))
                    else:
                        spans16.append((a, b))
            if length > n16:  # the padding is not an observation either
                if spans16 and spans16[-1][1] >= n16:
                    spans16[-1] = (spans16[-1][0], length)
                else:
                    spans16.append((n16, length))
            mask = GapMask(length, tuple(spans16))
            x16 = x16 * mask.observed()  # the resampler rings into the gaps: the observation is zero there
        # Resampling can overshoot the file's peak (Gibbs ripple near sharp edges); the fit clips its
        # output to [-1, 1], so such a window is scaled down into range and back up afterwards.
        gain = max(1.0, float(np.abs(x16).max()))
        y16 = np.asarray(self.process((x16 / gain).astype(np.float32), mask, seed), dtype=np.float32).reshape(-1)
        if y16.shape[0] != length or not np.all(np.isfinite(y16)):
            raise FitDiverged(f"the window function returned {y16.shape[0]} samples (expected {length}) or "
                              f"non-finite values")
        y = _resample(y16[:n16] * gain, FIT_SR, sr)
        return _fix(y, x.shape[0])


def _fix(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))


def _denoise_stream(info: AudioInfo, plan: WindowPlan, runner: _Segments, writer: _Writer) -> None:
    """Windowed denoising with a weighted overlap-add; memory: a few windows."""
    n, m = info.frames, plan.margin
    windows = plan_windows(n, plan.core, plan.overlap)
    reader = _Reader(info.path, info.channels)
    acc = np.zeros((info.channels, 0))
    wsum = np.zeros(0)
    acc_start = 0  # file index of acc[:, 0]
    for k, (a, b) in enumerate(windows):
        lo, hi = max(0, a - m), min(n, b + m)
        seg = reader.get(lo, hi)
        y = runner.run(seg, lo, k)[:, a - lo: b - lo]
        w = crossfade_weights(windows, k, plan.overlap)
        grow = b - acc_start - acc.shape[1]
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((info.channels, grow))], axis=1)
            wsum = np.concatenate([wsum, np.zeros(grow)])
        acc[:, a - acc_start: b - acc_start] += y * w
        wsum[a - acc_start: b - acc_start] += w
        final = windows[k + 1][0] if k + 1 < len(windows) else n
        cut = final - acc_start
        writer.write(acc[:, :cut] / wsum[:cut])
        acc, wsum, acc_start = acc[:, cut:], wsum[cut:], final


def _inpaint_stream(info: AudioInfo, plan: WindowPlan, spans: list[tuple[int, int]], runner: _Segments,
                    writer: _Writer) -> None:
    """Fill each gap from a window around it, then copy the input through with the fills spliced in."""
    n, m, sr = info.frames, plan.margin, info.sr
    groups = group_gaps(spans, n, plan.core, _context(plan, sr))
    fade = max(1, int(round(SPLICE_FADE_S * sr)))
    patches = []  # (start, end, fill (C, end - start), weight (end - start,))
    reader = _Reader(info.path, info.channels)
    for k, ((a, b), own) in enumerate(groups):
        lo, hi = max(0, a - m), min(n, b + m)
        seg = reader.get(lo, hi)
        window_gaps = [(s, e) for s, e in spans if e > lo and s < hi]  # every gap in view is masked
        y = runner.run(seg, lo, k, window_gaps)
        p0, p1 = max(a, own[0][0] - fade), min(b, own[-1][1] + fade)
        weight = np.zeros(p1 - p0)
        idx = np.arange(p0, p1)
        for s, e in own:
            ramp_in = np.clip((idx - (s - fade) + 0.5) / fade, 0, 1)
            ramp_out = np.clip(((e + fade) - idx - 0.5) / fade, 0, 1)
            weight = np.maximum(weight, np.minimum(ramp_in, ramp_out))
            weight[max(s, p0) - p0: min(e, p1) - p0] = 1.0
        patches.append((p0, p1, y[:, p0 - lo: p1 - lo], weight))
    pos = 0
    for block in _blocks(info.path, "float64"):  # float64: a DOUBLE file passes through unchanged
        x = block.T
        end = pos + x.shape[1]
        for p0, p1, fill, weight in patches:
            s, e = max(p0, pos), min(p1, end)
            if s < e:
                w = weight[s - p0: e - p0]
                x[:, s - pos: e - pos] = (1 - w) * x[:, s - pos: e - pos] + w * fill[:, s - p0: e - p0]
        writer.write(x[:, : max(0, min(end, n) - pos)])
        pos = end
        if pos >= n:
            break


# ----------------------------------------------------------------------------- internals

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
