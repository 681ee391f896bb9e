"""restore_file: check the input, the gaps and the output first, then stream the file through the fits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import soundfile as sf

from dap.core.errors import AudioError
from dap.core.text import one_line
from dap.restore.defaults import DEFAULT_OVERLAP, DEFAULT_TASK, DEFAULT_WINDOW, RestoreError
from dap.restore.gaps import gaps_to_samples, parse_gaps
from dap.restore.prior import WindowFn, WindowPrior
from dap.restore.reading import AudioInfo, scan
from dap.restore.summary import RestoreReport
from dap.restore.stream import WindowRestorer, denoise_stream, inpaint_stream
from dap.restore.windows import WindowPlan, check_window, group_gaps, plan_windows
from dap.restore.writing import BlockWriter, atomic_output, check_encodable, output_format


def estimate_fits(info: AudioInfo, task: str, window16: int = DEFAULT_WINDOW, overlap16: int = DEFAULT_OVERLAP,
                  gaps: list[tuple[float, float]] | None = None) -> int:
    """Fits a restoration will run (windows x channels), before running them."""
    plan = WindowPlan(info.sr, window16, overlap16)
    if task == "denoise":
        return len(plan_windows(info.frames, plan.core, plan.overlap)) * info.channels
    spans = gaps_to_samples(gaps or [], info.sr, info.frames, info.path)
    return len(group_gaps(spans, info.frames, plan.core, plan.gap_context)) * info.channels


def restore_file(inp: str | os.PathLike, out: str | os.PathLike, task: str = DEFAULT_TASK,
                 gaps: list[tuple[float, float]] | str | None = None, process: WindowFn | None = None,
                 window16: int = DEFAULT_WINDOW, overlap16: int = DEFAULT_OVERLAP, seed: int = 0,
                 progress: Callable[[int], None] | None = None,
                 log: Callable[[str], None] | None = None) -> RestoreReport:
    """Restore the audio file ``inp`` into ``out`` (see the :mod:`dap.restore` docstring).

    task: ``"denoise"`` or ``"inpaint"`` (then ``gaps``: ``[(start_s, end_s), ...]`` or the
    ``--gaps`` text). process: the window function (default :class:`WindowPrior` with its defaults).
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
    process = process or WindowPrior()
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
            writer = BlockWriter(f, subtype, out)
            restorer = WindowRestorer(info, plan, process, seed, report, progress, warn)
            if task == "denoise":
                denoise_stream(info, plan, restorer, writer)
            else:
                inpaint_stream(info, plan, spans, restorer, writer)
        if writer.frames != info.frames:
            raise AudioError(f"{out}: wrote {writer.frames} frames instead of {info.frames}")
    report.seconds = time.perf_counter() - t0
    return report
