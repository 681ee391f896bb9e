"""The one record every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Public data-set names, the same for the embedded set and the real corpora they stand in for.
DATASETS = ("speech", "digits", "drums", "piano", "noise", "stems")


@dataclass
class Clip:
    """One mono 16 kHz clip.

    audio: float32 ``(L,)``. For the ``stems`` data set ``audio`` is the target source and
    ``stems`` holds ``{"target": (L,), "accompaniment": (L,)}``; the mixture is their sum.
    ``source`` is ``"embedded"`` or ``"real"``; ``kind`` says how the embedded clip was made
    (real / rendered-from-real-samples / real-stems-artificial-mix) or names the real corpus.
    """

    id: str
    dataset: str
    audio: np.ndarray
    sr: int = 16000
    source: str = "embedded"
    kind: str = "real"
    stems: dict[str, np.ndarray] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.sr
