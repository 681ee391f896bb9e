"""Clips from files: one clip per one-shot file, or windows with non-trivial energy cut on a seeded
grid from long recordings, shared fairly across files (:func:`share_clips`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dap.core.audio import fix_length
from dap.core.seeds import stream
from dap.data.clip import Clip
from dap.data.corpora import ACTIVE_BLOCK, ACTIVE_DB, MIN_ACTIVE_FRACTION, MIN_ACTIVE_RMS, Corpus
from dap.data.tree import read_file, relative, samples_at_16k

def share_clips(items: Sequence, n: int | None, seed: int,
            take: Callable[[int, object, int, np.random.Generator], list[Clip]]) -> list[Clip]:
    """Visit ``items`` in a seeded order and ask each for up to a fair share of clips.

    ``take(index, item, quota, rng)`` returns at most ``quota`` clips, and asking again with a
    larger quota must return the earlier clips first (true for :func:`grid_windows`: the rng is
    re-created per call). With ``n=None`` each item is asked for one. The share is recomputed
    after every item, so items that give fewer clips (too short, silent) are made up for by the
    following ones; if that is still not enough, items that gave their full share are asked again.
    """
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(items))]
    want = len(items) if n is None else n
    out: list[Clip] = []
    given = dict.fromkeys(order, 0)

    def ask(i: int, extra: int) -> bool:
        # A per-item generator keeps an item's windows independent of the visiting order.
        got = take(i, items[i], given[i] + extra, stream(seed, i))
        got = got[given[i]: given[i] + extra]
        out.extend(got)
        given[i] += len(got)
        return len(got) == extra  # the item may hold more

    may_give = []
    for j, i in enumerate(order):
        if len(out) >= want:
            break
        quota = 1 if n is None else math.ceil((want - len(out)) / (len(order) - j))
        if ask(i, quota):
            may_give.append(i)
    while n is not None and len(out) < want and may_give:
        again, may_give = may_give, []
        for j, i in enumerate(again):
            if len(out) >= want:
                break
            if ask(i, math.ceil((want - len(out)) / (len(again) - j))):
                may_give.append(i)
    return out


def one_shot(c: Corpus, base: Path, path: Path, length: int, meta: dict) -> list[Clip]:
    """One clip from a one-shot file, or none if the file is silent."""
    x = read_file(c, base, path)
    if not np.any(x):
        return []
    y, gain = peak_normalise(fix_length(x, length))
    rel = relative(path, base)
    return [Clip(id=f"{c.dataset}/{rel}", dataset=c.dataset, audio=y, source="real", kind=c.kind,
                 meta={"path": rel, "gain": gain, "file_samples": int(x.shape[0]), **meta})]


def windows_of(c: Corpus, base: Path, path: Path, quota: int, rng: np.random.Generator,
                length: int, meta: dict | None = None) -> list[Clip]:
    """Up to ``quota`` windows of one long recording."""
    if samples_at_16k(c, base, path) < length:
        return []  # too short: skip without decoding
    x = read_file(c, base, path)
    rel = relative(path, base)
    clips = []
    for start in grid_windows(x, length, quota, rng):
        y, gain = peak_normalise(x[start:start + length])
        clips.append(Clip(id=f"{c.dataset}/{rel}@{start}", dataset=c.dataset, audio=y,
                          source="real", kind=c.kind,
                          meta={"path": rel, "offset": int(start), "gain": gain, **(meta or {})}))
    return clips


def stem_windows(c: Corpus, base: Path, track: Path, quota: int, rng: np.random.Generator,
                  length: int, subset: str, split: str) -> list[Clip]:
    """Up to ``quota`` windows of one MUSDB18-HQ track: vocals and accompaniment."""
    if samples_at_16k(c, base, track / "vocals.wav") < length:
        return []
    vocals = read_file(c, base, track / "vocals.wav")
    if (track / "mixture.wav").is_file():
        mixture, acc_from = read_file(c, base, track / "mixture.wav"), "mixture - vocals"
        m = min(len(vocals), len(mixture))
        vocals, mixture = vocals[:m], mixture[:m]
        accomp = mixture - vocals
    else:
        parts = [read_file(c, base, track / f"{s}.wav") for s in ("drums", "bass", "other")]
        m = min(len(vocals), *(len(p) for p in parts))
        vocals = vocals[:m]
        accomp = sum(p[:m] for p in parts).astype(np.float32)
        mixture, acc_from = vocals + accomp, "drums + bass + other"
    clips = []
    # Energy is judged on the mixture: windows with silent vocals are legitimate (paper 2's PES).
    for start in grid_windows(mixture, length, quota, rng):
        sl = slice(start, start + length)
        target = np.ascontiguousarray(vocals[sl], dtype=np.float32)
        rel = relative(track, base)
        clips.append(Clip(
            id=f"{c.dataset}/{rel}@{start}", dataset=c.dataset, audio=target, source="real",
            kind=c.kind,
            stems={"target": target, "accompaniment": np.ascontiguousarray(accomp[sl],
                                                                           dtype=np.float32)},
            meta={"path": rel, "track": track.name, "subset": subset, "split": split,
                  "offset": int(start), "accompaniment_from": acc_from}))
    return clips


def grid_windows(x: np.ndarray, length: int, quota: int, rng: np.random.Generator) -> list[int]:
    """Start indices of up to ``quota`` non-overlapping windows with non-trivial energy.

    The windows sit on a grid ``phase + k * length`` (random phase, random slot order), so windows
    taken from the same file never overlap. See MIN_ACTIVE_FRACTION for "non-trivial".
    """
    slots = len(x) // length
    if slots == 0:
        return []
    phase = int(rng.integers(0, len(x) - slots * length + 1))
    floor = max(MIN_ACTIVE_RMS, rms(x) * 10 ** (ACTIVE_DB / 20))
    starts = []
    for k in rng.permutation(slots):
        start = phase + int(k) * length
        if active_fraction(x[start:start + length], floor) >= MIN_ACTIVE_FRACTION:
            starts.append(start)
            if len(starts) == quota:
                break
    return starts


def active_fraction(w: np.ndarray, floor: float) -> float:
    """Fraction of ACTIVE_BLOCK-sample blocks of ``w`` whose RMS reaches ``floor``."""
    block = min(ACTIVE_BLOCK, len(w))
    blocks = w[: len(w) // block * block].astype(np.float64).reshape(-1, block)
    return float(np.mean(np.sqrt(np.mean(blocks ** 2, axis=1)) >= floor))


def peak_normalise(x: np.ndarray) -> tuple[np.ndarray, float]:
    peak = float(np.max(np.abs(x)))
    gain = 1.0 / peak if peak > 0 else 1.0
    return np.ascontiguousarray(x * gain, dtype=np.float32), gain


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
