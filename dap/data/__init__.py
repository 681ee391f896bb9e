"""Clips for every experiment: the embedded default set or the real corpora of the papers.

One entry point, :func:`load_clips`. ``source="embedded"`` (the default) reads the small committed
set that always works offline; ``source="real"`` reads LJSpeech, SC09, the WaveGAN drum and piano
sets, DEMAND or MUSDB18-HQ from a folder given by ``root=`` or the ``DAP_DATA`` environment
variable (see :mod:`dap.data.real`).
"""

from __future__ import annotations

import os

from dap.data.clip import DATASETS, Clip
from dap.data.real import DataArgumentError, describe_expected_layout, load_real

SOURCES = ("embedded", "real")

__all__ = ["Clip", "DATASETS", "SOURCES", "DataArgumentError", "describe_expected_layout",
           "load_clips", "load_real"]


def load_clips(dataset: str, n: int | None = None, seed: int = 0, source: str = "embedded",
               root: str | os.PathLike | None = None, split: str | None = None) -> list[Clip]:
    """``n`` clips (``None``: all) of ``dataset``, chosen reproducibly from ``seed``.

    dataset: one of :data:`DATASETS`. source: ``"embedded"`` or ``"real"``. ``root`` and
    ``split`` only apply to real data (the embedded set has one fixed split per data set), so
    passing them with ``source="embedded"`` is an error rather than being silently ignored.
    Returns mono 16 kHz :class:`Clip` objects, audio float32 ``(L,)``.
    """
    if dataset not in DATASETS:
        raise DataArgumentError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    if source == "real":
        return load_real(dataset, n=n, seed=seed, root=root, split=split)
    if source != "embedded":
        raise DataArgumentError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if root is not None or split is not None:
        given = ", ".join(f"{k}={v!r}" for k, v in (("root", root), ("split", split))
                          if v is not None)
        raise DataArgumentError(f"{given} only applies to source='real'; the embedded set has one "
                                f"fixed split per data set (pass source='real' to read a corpus)")
    # Imported here so that the real loaders work even while the embedded set is unavailable.
    from dap.data.embedded import SPLIT_OF_DATASET, load_split

    return load_split(SPLIT_OF_DATASET[dataset], n=n, seed=seed)
