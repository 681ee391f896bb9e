"""The gaps to fill: parse ``--gaps``, turn seconds into sample spans, and merge overlapping spans."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable

from dap.restore.defaults import FIT_SR, RestoreError

Span = tuple  # (start, end), end exclusive: seconds (float) or samples (int)


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """``spans`` sorted, empty ones (end <= start) dropped, overlapping or touching ones merged."""
    merged: list[Span] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


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
    return merge_spans(spans)


def gaps_to_samples(gaps: list[tuple[float, float]], sr: int, frames: int, path: Path | str = "input") -> list[tuple[int, int]]:
    """Gap times (s) -> sample spans ``[(start, end), ...]`` (end exclusive) of a file of ``frames``."""
    spans = []
    duration = frames / sr
    for s, e in gaps:
        if s >= duration:
            raise RestoreError(f"{path}: gap {s:g}-{e:g} s starts after the end of the file ({duration:.3f} s)")
        if e > duration + 1.0 / sr:
            raise RestoreError(f"{path}: gap {s:g}-{e:g} s ends after the end of the file ({duration:.3f} s)")
        spans.append((int(math.floor(s * sr)), min(frames, int(math.ceil(e * sr)))))
    return merge_spans(spans)


def gaps_at_fit_rate(gaps: list[tuple[int, int]], offset: int, sr: int, n16: int, length: int) -> list[tuple[int, int]]:
    """The ``gaps`` (file samples at ``sr``) of a window starting at ``offset``, as spans of its
    16 kHz version of ``n16`` samples padded to ``length``; the padding is a gap too (not observed)."""
    spans16 = [(max(0, int(math.floor((s - offset) * FIT_SR / sr))),
                min(n16, int(math.ceil((e - offset) * FIT_SR / sr)))) for s, e in gaps]
    return merge_spans(spans16 + [(n16, length)])
