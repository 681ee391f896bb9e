"""Examples (mixture and target spectrograms of one, possibly augmented, fragment) and the
:class:`SpectrogramSet` a training or evaluation iterates over."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dap.core.errors import DatasetError
from dap.core.seeds import stable_hash, stream
from dap.wiass.side_info import total_magnitude
from dap.wiass.data import (Augmentation, Fragment, apply_augmentation, draw_augmentation, normalised_magnitudes)


@dataclass
class Example:
    """One model input / target pair.

    mixture_mag, target_mag: float32 ``(N, F)`` normalised by the mixture's maximum ``scale``.
    """

    id: str
    mixture_mag: torch.Tensor
    target_mag: torch.Tensor
    scale: float
    fragment: Fragment | None = None
    augmentation: Augmentation | None = None

    @property
    def frames(self) -> np.ndarray:
        """float32 ``(N,)``: the total target magnitude per frame (M1's values)."""
        return total_magnitude(self.target_mag)


def make_example(fragment: Fragment, aug: Augmentation | None = None, suffix: str = "") -> Example:
    """Spectrograms of a fragment, augmented when ``aug`` is given."""
    if aug is None:
        target, acc = fragment.target, fragment.accompaniment
    else:
        target, acc = apply_augmentation(fragment, aug)
    mix, tgt, scale = normalised_magnitudes(target + acc, target)
    return Example(fragment.id + suffix, mix, tgt, scale, fragment, aug)


class SpectrogramSet(torch.utils.data.Dataset):
    """Examples of a list of fragments, optionally augmented ``copies`` times each.

    Item ``i`` is copy ``i % copies`` of fragment ``i // copies``; with ``copies=0`` items are the
    fragments themselves (validation, test). Each copy's augmentation is drawn from
    ``default_rng([seed, hash(fragment id), copy])``, so items do not depend on access order.
    Items are computed on first access and cached (a 513 x 256 pair is about 1 MB).
    """

    def __init__(self, fragments: list[Fragment], copies: int = 0, seed: int = 0,
                 gain_db: float = 2.0, pitch: int = 2, circular_shift: bool = False,
                 cache: bool = True) -> None:
        if not fragments:
            raise DatasetError("no fragments to build a spectrogram set from")
        if copies < 0:
            raise ValueError(f"copies must be >= 0, got {copies}")
        self.fragments = list(fragments)
        self.copies = int(copies)
        self.seed = int(seed)
        self.options = {"gain_db": float(gain_db), "pitch": int(pitch),
                        "circular_shift": bool(circular_shift)}
        self.cache = cache
        self._cache: dict[int, Example] = {}

    def __len__(self) -> int:
        return len(self.fragments) * max(1, self.copies)

    def augmentation(self, i: int) -> Augmentation | None:
        """The augmentation of item ``i`` (None for un-augmented sets)."""
        if not self.copies:
            return None
        frag = self.fragments[i // self.copies]
        rng = stream(self.seed, stable_hash(frag.id), i % self.copies)
        return draw_augmentation(rng, **self.options)

    def __getitem__(self, i: int) -> Example:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} of a set of {len(self)}")
        if i in self._cache:
            return self._cache[i]
        if self.copies:
            frag = self.fragments[i // self.copies]
            ex = make_example(frag, self.augmentation(i), suffix=f"#aug{i % self.copies}")
        else:
            ex = make_example(self.fragments[i])
        if self.cache:
            self._cache[i] = ex
        return ex

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, list[Example]]:
        """Stacked ``mixture_mag (B, N, F)``, ``target_mag (B, N, F)`` and the examples."""
        items = [self[int(i)] for i in indices]
        return (torch.stack([e.mixture_mag for e in items]),
                torch.stack([e.target_mag for e in items]), items)
