"""Seeds derived from the run's global seed, so that every clip, fit and noise draw is reproducible
on its own (resuming or reordering a grid draws the same numbers).

Two derivations, one per kind of key:

* :func:`derive_seed` (:func:`stable_hash`) for *named* keys (data set, clip id, design): a hash of the names, stable
  across processes and Python versions (``hash()`` of a string is not);
* :func:`sub_seed` / :func:`stream` for *numbered* streams of one fit (source 1 / source 2 / the
  masks; the noise / the gap positions): numpy's ``SeedSequence`` over ``[seed, *keys]``.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(*keys) -> int:
    """A 31-bit integer from names, stable across processes (unlike ``hash``)."""
    blob = "|".join(map(str, keys)).encode()
    return int.from_bytes(hashlib.sha1(blob).digest()[:4], "little") & 0x7FFFFFFF


def derive_seed(seed: int, *keys) -> int:
    """A 31-bit seed for one clip / fit, derived from the global ``seed`` and names (stable)."""
    return stable_hash(seed, *keys)


def stream(seed: int, *keys: int) -> np.random.Generator:
    """Random generator of the numbered stream ``keys`` of ``seed`` (``stream(s)`` = ``default_rng(s)``)."""
    return np.random.default_rng([seed, *keys] if keys else seed)


def sub_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed (e.g. for ``torch.Generator``) of the numbered stream ``keys`` of ``seed``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] & 0x7FFFFFFF)
