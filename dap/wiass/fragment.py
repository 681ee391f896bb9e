"""Paper 2's unit of data: an 8.192-s fragment with its target and accompaniment stems, and the
split names. Its own module so that the embedded loader (:mod:`dap.wiass.data`) and the generated
corpus (:mod:`dap.wiass.corpus`) share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DatasetError

#: Fragment length in samples: 8.192 s at 16 kHz.
FRAGMENT = 131072
SPLITS = ("train", "valid", "test")


@dataclass
class Fragment:
    """One 8.192-s excerpt with its two stems.

    target, accompaniment: float32 ``(L,)``. ``group`` names the recording the fragment comes
    from (fragments of one recording never straddle splits); ``family`` the stratum of the split.
    """

    id: str
    target: np.ndarray
    accompaniment: np.ndarray
    group: str = ""
    family: str = "all"
    source: str = "embedded"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("target", "accompaniment"):
            x = np.asarray(getattr(self, name), dtype=np.float32)
            if x.ndim != 1:
                raise DatasetError(f"fragment {self.id}: {name} must be mono (L,), got {x.shape}")
            if not np.all(np.isfinite(x)):
                raise DatasetError(f"fragment {self.id}: {name} contains NaN or Inf")
            setattr(self, name, x)
        if self.target.shape != self.accompaniment.shape:
            raise DatasetError(f"fragment {self.id}: target {self.target.shape} and accompaniment "
                               f"{self.accompaniment.shape} differ in length")
        self.group = self.group or self.id

    @property
    def mixture(self) -> np.ndarray:
        """float32 ``(L,)``: target + accompaniment (the linear mixture model of the paper)."""
        return self.target + self.accompaniment

    def silent_frames(self, frame: int = SAMPLE_RATE) -> int:
        """Number of complete 1-s frames in which the target is exactly zero (PES frames)."""
        n = self.target.shape[0] // frame
        return int(np.sum(~np.any(self.target[: n * frame].reshape(n, frame) != 0, axis=1)))
