"""Artificial side information of paper 2, section 4.3, with its true alignment.

The paper never published these generators; they are built here from its text. Each generator
returns a :class:`SideInfo` that also records how the side-information steps ``m`` relate to the
mixture frames ``n`` -- which the paper only shows as a picture (Fig. 3) -- so the attention's
alignment can be *measured* (:func:`alignment_accuracy`, :func:`segment_accuracy`).

The paper's kinds (N = 256 frames per fragment, M = 300 after padding, D = 1):

* **M1** -- "the total vocals magnitude for each time frame", ``Y_n = sum_f |V_{f,n}|`` at the
  mixture's frame rate, perfectly aligned (M = N). Use :func:`total_magnitude` for the paper's
  values; any frame-wise sequence (e.g. a 0/1 activity) is accepted and used as is.
* **M2** -- M1 padded on both sides with the value 100 to M = 300; the split of the padding
  between the two sides is random (left length uniform in ``[0, M - N]``).
* **A1** -- the binary activity (1 active, 0 silent; see :func:`binarize`), padded like M2.
* **A2** -- A1, but first every run of zeros is shortened: for a run of length L, ``w`` is drawn
  uniformly from the integers ``1..floor(L/2)`` and ``w`` of its zeros are deleted; then pad to M.
* **A3.1** -- as A2, and runs of ones are shortened by the same rule as well; then pad to M.
* **A3.2** -- A3.1 circularly shifted by 100 steps (``np.roll``, padding included) at test time.

Where the text left a choice, and what we chose:

* "We draw w uniformly from [1;L/2] for each example, where L is the length of a sub-sequence":
  ``w`` depends on each run's own L, so it is drawn afresh *for every run* of every example.
  The bound is ``floor(L/2)``, so runs of length 1 are never shortened (``[1; 0.5]`` holds no
  integer) and every run keeps at least half its length: no run disappears, which matches the
  paper's remark that the number and order of silent parts survive.
* *Which* ``w`` steps of a run are deleted is not said (the values are identical, but it fixes the
  ground-truth alignment): we delete ``w`` distinct positions chosen uniformly at random.
  Deleted mixture frames have no counterpart: ``alignment[n] = -1``. Their run-level truth is
  kept in ``frame_segment`` (see below).
* Padding: the paper draws the split "for each batch" in training and per example at test time.
  Generators draw it per call (per example); pass ``left=`` to fix it, e.g. for a whole batch.
* The activity threshold: the paper sets steps with total magnitude below 0.1 to 0
  (:data:`PAPER_ACTIVITY_THRESHOLD`, for spectrograms normalised to max 1). The default here is 0,
  i.e. a frame is active when it is not exactly silent, matching the "exactly zero" silence of
  the PES/EPS metrics. Pass ``threshold=PAPER_ACTIVITY_THRESHOLD`` for the paper's rule.
* A3.2's shift moves the padding too (the whole length-M sequence is rolled); ``shift > 0`` moves
  content to later steps. Some content may wrap around to the start.

Segments. Within a run of identical activity values the model cannot tell one step from another,
so for A2/A3 the meaningful truth is run-level: ``frame_segment[n]`` is the run index of frame n,
``step_segment[m]`` that of step m (-1 for padding). For M1/M2 every frame is its own segment;
for A1 segments are the runs (no deletions, so exact alignment is also defined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Value of the padding steps (paper: "We use 100 as padding value").
PAD_VALUE = 100.0
#: Padded side-information length M of the paper.
DEFAULT_LENGTH = 300
#: A3.2's circular shift in steps.
DEFAULT_SHIFT = 100
#: The paper's activity threshold on the total (frequency-summed) normalised magnitude.
PAPER_ACTIVITY_THRESHOLD = 0.1
KINDS = ("M1", "M2", "A1", "A2", "A3.1", "A3.2")


@dataclass
class SideInfo:
    """One example's side information and its ground-truth relation to the mixture frames.

    Attributes:
        kind: one of :data:`KINDS`.
        values: float32 ``(M, D)`` with D = 1, the sequence the model sees (padding = 100).
        alignment: int64 ``(N,)``: for mixture frame n the step m that carries it, or -1 when the
            frame was deleted (A2, A3).
        frame_segment: int64 ``(N,)``: segment (run) index of each mixture frame.
        step_segment: int64 ``(M,)``: segment index of each step, -1 on padding.
        left_pad: padding steps before the content (before any shift).
        shift: circular shift applied (A3.2), 0 otherwise.
    """

    kind: str
    values: np.ndarray
    alignment: np.ndarray
    frame_segment: np.ndarray
    step_segment: np.ndarray
    left_pad: int = 0
    shift: int = 0

    @property
    def n_frames(self) -> int:
        """N, the number of mixture frames."""
        return int(self.alignment.shape[0])

    @property
    def n_steps(self) -> int:
        """M, the number of side-information steps."""
        return int(self.values.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """bool ``(M,)``: True on content steps, False on padding."""
        return self.step_segment >= 0


# ----------------------------------------------------------------------------- inputs
def _as_numpy(x) -> np.ndarray:
    """numpy view of an array or a (possibly GPU, possibly grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def total_magnitude(target_mag) -> np.ndarray:
    """M1's values: the frequency-summed target magnitude per frame.

    Args:
        target_mag: ``(N, F)`` magnitude spectrogram (time-major), numpy or torch.
    Returns:
        float32 ``(N,)``.
    """
    target_mag = _as_numpy(target_mag)
    if target_mag.ndim != 2:
        raise ValueError(f"target_mag must be (frames, freqs), got shape {target_mag.shape}")
    return np.abs(target_mag).sum(axis=1).astype(np.float32)


def binarize(frames, threshold: float = 0.0) -> np.ndarray:
    """0/1 activity from a frame-wise non-negative sequence ``(N,)``.

    A step is active (1) when its value is > 0 **and** >= ``threshold``: with threshold 0 that is
    "not exactly zero"; with 0.1 it is the paper's "below 0.1 -> 0, otherwise 1".
    Returns float32 ``(N,)``.
    """
    frames = _as_numpy(frames)
    if frames.ndim != 1:
        raise ValueError(f"expected a frame-wise sequence (N,), got shape {frames.shape}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    return ((frames > 0) & (frames >= threshold)).astype(np.float32)


def activity_from_target(target, threshold: float = 0.0) -> np.ndarray:
    """Frame-wise target activity: 1 where the target is active in a frame, 0 where silent.

    Args:
        target: ``(N, K)`` frames -- magnitude frames ``(N, F)`` or waveform frames
            ``(N, frame_len)`` -- or an already summed ``(N,)`` sequence; numpy or torch.
        threshold: a frame is active when ``sum_k |target[n, k]|`` is > 0 and >= ``threshold``.
            The default 0 means "the frame is not all zero". The paper uses 0.1 on the total
            magnitude of max-normalised spectrograms (:data:`PAPER_ACTIVITY_THRESHOLD`).
    Returns:
        float32 ``(N,)`` of 0/1.
    """
    target = _as_numpy(target)
    if target.ndim == 2:
        target = np.abs(target).sum(axis=1)
    elif target.ndim != 1:
        raise ValueError(f"target must be (frames, bins) or (frames,), got shape {target.shape}")
    return binarize(np.abs(target), threshold)


def _check_frames(frames) -> np.ndarray:
    frames = _as_numpy(frames).astype(np.float32)
    if frames.ndim != 1 or frames.shape[0] == 0:
        raise ValueError(f"expected a non-empty frame-wise sequence (N,), got shape {frames.shape}")
    if not np.all(np.isfinite(frames)):
        raise ValueError("the frame-wise sequence contains NaN or Inf")
    return frames


def _check_binary(activity) -> np.ndarray:
    activity = _check_frames(activity)
    if not np.all((activity == 0) | (activity == 1)):
        raise ValueError("activity must contain only 0 and 1; use binarize() or "
                         "activity_from_target() first")
    return activity


def _runs(seq: np.ndarray) -> np.ndarray:
    """Run index of every element of a 1-D sequence (runs of equal consecutive values)."""
    return np.concatenate([[0], np.cumsum(seq[1:] != seq[:-1])]).astype(np.int64)


# ----------------------------------------------------------------------------- building blocks
def pad(info: SideInfo, length: int, rng: np.random.Generator, left: int | None = None,
        kind: str | None = None) -> SideInfo:
    """Pad ``info`` on both sides with :data:`PAD_VALUE` to ``length`` steps.

    The left padding is uniform in ``[0, length - K]`` (K = current steps) unless ``left`` is
    given; the right padding takes the rest. Alignment indices move by ``left``.
    """
    k = info.n_steps
    if length < k:
        raise ValueError(f"{k} side-information steps do not fit in length {length}; "
                         "pass a larger length")
    free = length - k
    if left is None:
        left = int(rng.integers(0, free + 1))
    elif not 0 <= left <= free:
        raise ValueError(f"left padding must be in [0, {free}], got {left}")
    values = np.full((length, info.values.shape[1]), PAD_VALUE, dtype=np.float32)
    values[left:left + k] = info.values
    step_segment = np.full(length, -1, dtype=np.int64)
    step_segment[left:left + k] = info.step_segment
    alignment = np.where(info.alignment >= 0, info.alignment + left, -1)
    return SideInfo(kind or info.kind, values, alignment, info.frame_segment.copy(), step_segment,
                    left_pad=info.left_pad + left, shift=info.shift)


def shift_circular(info: SideInfo, shift: int = DEFAULT_SHIFT, kind: str | None = None) -> SideInfo:
    """Roll the whole sequence (padding included) by ``shift`` steps: step m moves to
    ``(m + shift) mod M``; alignments follow."""
    m = info.n_steps
    alignment = np.where(info.alignment >= 0, (info.alignment + shift) % m, -1)
    return SideInfo(kind or info.kind, np.roll(info.values, shift, axis=0), alignment,
                    info.frame_segment.copy(), np.roll(info.step_segment, shift),
                    left_pad=info.left_pad, shift=info.shift + shift)


def shorten_runs(activity, rng: np.random.Generator, values: tuple[int, ...] = (0,),
                 kind: str = "A2") -> SideInfo:
    """Delete part of every run of the given ``values`` (A2: zeros; A3: zeros and ones).

    For a run of length L, ``w ~ U{1..floor(L/2)}`` distinct positions chosen uniformly at random
    are deleted (runs with L < 2 are left alone). Runs are visited left to right, so a seeded
    ``rng`` gives a reproducible result. Returns unpadded :class:`SideInfo` (M <= N).
    """
    activity = _check_binary(activity)
    segment = _runs(activity)
    keep = np.ones(activity.shape[0], dtype=bool)
    starts = np.flatnonzero(np.concatenate([[True], segment[1:] != segment[:-1]]))
    stops = np.append(starts[1:], activity.shape[0])
    for start, stop in zip(starts, stops):
        length = int(stop - start)
        if activity[start] not in values or length < 2:
            continue
        w = int(rng.integers(1, length // 2 + 1))
        keep[start + rng.choice(length, size=w, replace=False)] = False
    alignment = np.where(keep, np.cumsum(keep) - 1, -1).astype(np.int64)
    return SideInfo(kind, activity[keep][:, None], alignment, segment, segment[keep])


def _aligned(frames: np.ndarray, kind: str, segment: np.ndarray | None = None) -> SideInfo:
    """Perfectly aligned side information (M = N)."""
    n = frames.shape[0]
    idx = np.arange(n, dtype=np.int64)
    segment = idx if segment is None else segment
    return SideInfo(kind, frames[:, None].astype(np.float32), idx, segment.copy(), segment.copy())


# ----------------------------------------------------------------------------- the kinds
def make_side_info(kind: str, frames, rng: np.random.Generator, length: int = DEFAULT_LENGTH,
                   threshold: float = 0.0, shift: int = DEFAULT_SHIFT,
                   left: int | None = None) -> SideInfo:
    """Build one example's side information of the given kind.

    Args:
        kind: one of :data:`KINDS`.
        frames: frame-wise sequence ``(N,)`` at the mixture's frame rate. The paper's M kinds use
            the total target magnitude (:func:`total_magnitude`); a 0/1 activity also works. The
            A kinds binarise it with ``threshold`` (a 0/1 input is unchanged).
        rng: the source of all randomness (padding split, deletions).
        length: M after padding (300 in the paper); ignored by M1.
        threshold: activity threshold for the A kinds (see :func:`binarize`).
        shift: A3.2's circular shift.
        left: fix the left padding instead of drawing it (same draw for a batch, tests).
    Returns:
        :class:`SideInfo` with ``values (M, 1)``; M = N for M1, ``length`` otherwise.

    For the same ``frames`` and equally seeded ``rng``, "A3.2" equals "A3.1" rolled by ``shift``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown side-information kind {kind!r}; choose one of {KINDS}")
    frames = _check_frames(frames)
    if kind == "M1":
        return _aligned(frames, kind)
    if kind == "M2":
        return pad(_aligned(frames, kind), length, rng, left)
    activity = binarize(frames, threshold)
    if kind == "A1":
        base = _aligned(activity, kind, _runs(activity))
    elif kind == "A2":
        base = shorten_runs(activity, rng, values=(0,), kind=kind)
    else:  # A3.1 and A3.2
        base = shorten_runs(activity, rng, values=(0, 1), kind=kind)
    info = pad(base, length, rng, left)
    if kind == "A3.2":
        info = shift_circular(info, shift)
    return info


def stack_side_info(items: list[SideInfo]) -> tuple[np.ndarray, np.ndarray]:
    """Batch side information: float32 values ``(B, M, D)`` and bool content mask ``(B, M)``."""
    if not items:
        raise ValueError("no side information to stack")
    lengths = {it.n_steps for it in items}
    if len(lengths) != 1:
        raise ValueError(f"side information lengths differ within the batch: {sorted(lengths)}; "
                         "pad them to one length (M1 needs fragments of equal N)")
    return (np.stack([it.values for it in items]).astype(np.float32),
            np.stack([it.mask for it in items]))


# ----------------------------------------------------------------------------- measuring alignment
def _check_attention(attention, n: int) -> np.ndarray:
    attention = _as_numpy(attention)
    if attention.ndim != 2 or attention.shape[0] != n:
        raise ValueError(f"attention must be (N={n}, M), got shape {attention.shape}")
    return attention


def alignment_accuracy(attention, alignment) -> tuple[float, float]:
    """How well the attention's argmax matches the true alignment.

    Args:
        attention: ``(N, M)`` weights of one example (numpy or torch).
        alignment: int ``(N,)``, true step per frame, -1 for frames without a counterpart
            (those frames are skipped).
    Returns:
        (fraction of frames whose argmax step equals the true step,
         mean |argmax - true| in steps, not wrapped around for shifted sequences).
    """
    alignment = _as_numpy(alignment).astype(np.int64)
    attention = _check_attention(attention, alignment.shape[0])
    valid = alignment >= 0
    if not valid.any():
        raise ValueError("no frame has a true alignment (all -1)")
    if alignment.max() >= attention.shape[1]:
        raise ValueError(f"alignment points at step {alignment.max()} but attention has "
                         f"{attention.shape[1]} steps")
    best = attention.argmax(axis=1)[valid]
    truth = alignment[valid]
    return float(np.mean(best == truth)), float(np.mean(np.abs(best - truth)))


def segment_accuracy(attention, frame_segment, step_segment) -> float:
    """Fraction of frames whose argmax step lies in the frame's own segment (run).

    The run-level alignment measure for A2/A3, where deleted frames have no single true step.
    Every frame counts; an argmax on padding is a miss.
    """
    frame_segment = _as_numpy(frame_segment).astype(np.int64)
    step_segment = _as_numpy(step_segment).astype(np.int64)
    attention = _check_attention(attention, frame_segment.shape[0])
    if attention.shape[1] != step_segment.shape[0]:
        raise ValueError(f"step_segment has {step_segment.shape[0]} steps, attention "
                         f"{attention.shape[1]}")
    return float(np.mean(step_segment[attention.argmax(axis=1)] == frame_segment))


def alignment_matrix(info: SideInfo) -> np.ndarray:
    """The ideal attention ``(N, M)`` for plotting next to the learned one.

    One-hot at the true step for aligned frames; for deleted frames the weight is spread evenly
    over the steps of the frame's segment. Rows sum to 1.
    """
    out = np.zeros((info.n_frames, info.n_steps), dtype=np.float32)
    for n in range(info.n_frames):
        if info.alignment[n] >= 0:
            out[n, info.alignment[n]] = 1.0
        else:
            steps = np.flatnonzero(info.step_segment == info.frame_segment[n])
            out[n, steps] = 1.0 / len(steps)
    return out
