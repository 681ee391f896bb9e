"""Resampling windows to the fit rate and back, with a small cache of torchaudio kernels."""

from __future__ import annotations

import numpy as np
import torch

from dap.core.audio import resample_ratio
from dap.restore.defaults import FIT_SR

_RESAMPLERS: dict = {}


def cached_resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """``(L,)`` float32 resampled with a cached torchaudio kernel. Unlike
    :func:`dap.core.audio.resample`, the way back from 16 kHz uses the exact inverse of the ratio
    the way in used (odd rates are approximated: :func:`dap.core.audio.resample_ratio`)."""
    if orig == new:
        return x.astype(np.float32, copy=False)
    import torchaudio  # here, as in dap.core.audio: a file at 16 kHz never needs it

    key = (orig, new)
    if key not in _RESAMPLERS and len(_RESAMPLERS) >= 8:  # one file needs two; keep memory bounded
        _RESAMPLERS.clear()
    if key not in _RESAMPLERS:  # odd rates use an approximate ratio, and its exact inverse on the way back
        o, n = resample_ratio(orig, new) if orig != FIT_SR else resample_ratio(new, orig)[::-1]
        _RESAMPLERS[key] = torchaudio.transforms.Resample(o, n)
    with torch.no_grad():
        return _RESAMPLERS[key](torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
