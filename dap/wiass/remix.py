"""More paper-2 data from few stems: remixed training examples and gated evaluation fragments.

The embedded stems hold 24 fragments (14 for training), and half of their targets are never
silent, so their A-type side information equals BL2's and PES has almost nothing to average over.
Two generators, both seeded and computed at run time from the committed stems (nothing new is
committed; the audio stays real, the mixtures and silences are artificial, and the captions say so):

* :class:`RemixSet` -- training examples that pair the target of one training fragment with the
  accompaniment of another (or its own), each circularly shifted by a random amount, at the target
  fragment's own target-to-accompaniment energy ratio moved by ``U(-gain_db, gain_db)`` dB, and with
  1-3 random runs of the target gated to exact digital zero (:func:`gate`). 14 targets x 14
  accompaniments x shifts x gates give as many distinct examples as asked for.
* :func:`gated_fragments` -- validation / test fragments (the real pairs) whose targets get whole
  1-s frames gated to zero until every fragment has at least ``min_runs`` silent runs, on the 1-s
  grid of PES / EPS, so that every test fragment defines PES and the activity side information
  always has several runs to align.

Gates have 5 ms raised-cosine edges *outside* the silent run, so the silence is exact and the edge
does not click. The activity (and so the side information's truth) follows from the gated target,
as for any fragment.
"""

from __future__ import annotations

import numpy as np

from dap.core.audio import SAMPLE_RATE
from dap.core.seeds import stable_hash, stream
from dap.wiass.data import Fragment
from dap.wiass.examples import SpectrogramSet, make_example

#: Length of the gates' fade in samples (5 ms).
FADE = 80
#: Training gates: number of runs and run length in seconds.
TRAIN_RUNS = (1, 3)
TRAIN_RUN_SECONDS = (0.3, 2.0)


def gate(target: np.ndarray, runs: list[tuple[int, int]], fade: int = FADE) -> np.ndarray:
    """``target`` ``(L,)`` set to exact zero in each ``[start, stop)`` run, with raised-cosine
    fades of ``fade`` samples just outside each run. Returns a new float32 array."""
    out = np.asarray(target, dtype=np.float64).copy()
    length = out.shape[0]
    env = np.ones(length)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / (fade + 1))  # rises 0 -> 1
    for start, stop in runs:
        if not 0 <= start < stop <= length:
            raise ValueError(f"gate run [{start}, {stop}) is outside a signal of {length} samples")
        env[start:stop] = 0.0
        a = max(0, start - fade)
        env[a:start] = np.minimum(env[a:start], ramp[::-1][fade - (start - a):])
        b = min(length, stop + fade)
        env[stop:b] = np.minimum(env[stop:b], ramp[: b - stop])
    out *= env
    out[env == 0] = 0.0
    return out.astype(np.float32)


def silent_runs(target: np.ndarray, frame: int = SAMPLE_RATE) -> int:
    """Number of runs of consecutive complete ``frame``-sample frames that are exactly zero."""
    n = target.shape[0] // frame
    silent = ~np.any(target[: n * frame].reshape(n, frame) != 0, axis=1)
    return int(np.sum(silent & ~np.concatenate([[False], silent[:-1]])))


def gated_fragments(fragments: list[Fragment], seed: int, min_runs: int = 2,
                    frame: int = SAMPLE_RATE) -> list[Fragment]:
    """Evaluation fragments whose targets have at least ``min_runs`` silent runs of whole frames.

    Frames to gate are drawn (seeded by ``seed`` and the fragment id) among active frames that
    do not touch an existing silent frame, so each new gate adds a run. Fragments that already
    have enough runs are returned unchanged; gated ones get the id suffix ``+gated`` and
    ``meta["gated_frames"]``.
    """
    out = []
    for f in fragments:
        target = f.target
        n = target.shape[0] // frame
        added: list[int] = []
        rng = stream(seed, stable_hash(f.id), 15)
        while silent_runs(target, frame) < min_runs:
            silent = ~np.any(target[: n * frame].reshape(n, frame) != 0, axis=1)
            near = silent | np.concatenate([silent[1:], [False]]) | np.concatenate([[False], silent[:-1]])
            free = np.flatnonzero(~near)
            if free.size == 0:
                break  # nothing left to gate without merging runs
            k = int(rng.choice(free))
            added.append(k)
            target = gate(target, [(k * frame, (k + 1) * frame)])
        if added:
            meta = {**f.meta, "gated_frames": sorted(added)}
            f = Fragment(f.id + "+gated", target, f.accompaniment, group=f.group, family=f.family,
                         source=f.source, meta=meta)
        out.append(f)
    return out


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


class RemixSet(SpectrogramSet):
    """``size`` training examples remixed from ``fragments`` (see the module docstring).

    Item ``i`` is drawn from ``default_rng([seed, 104729, i])`` only, so items do not depend on
    access order and a resumed training sees the same data. ``recipe(i)`` says what item ``i`` is.
    """

    def __init__(self, fragments: list[Fragment], size: int, seed: int = 0, gain_db: float = 2.0,
                 cache: bool = True) -> None:
        super().__init__(fragments, copies=0, seed=seed, gain_db=gain_db, pitch=0, cache=cache)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.options = {"gain_db": float(gain_db), "remix": self.size}

    def __len__(self) -> int:
        return self.size

    def augmentation(self, i: int):
        return None

    def recipe(self, i: int) -> dict:
        """Target / accompaniment fragment indices, shifts, gain (dB) and gated runs of item ``i``."""
        rng = stream(self.seed, 104729, int(i))
        k = len(self.fragments)
        t, a = int(rng.integers(k)), int(rng.integers(k))
        length = self.fragments[t].target.shape[0]
        shift_t, shift_a = int(rng.integers(length)), int(rng.integers(length))
        gain = float(rng.uniform(-self.options["gain_db"], self.options["gain_db"]))
        runs = []
        for _ in range(int(rng.integers(TRAIN_RUNS[0], TRAIN_RUNS[1] + 1))):
            size = int(rng.uniform(*TRAIN_RUN_SECONDS) * SAMPLE_RATE)
            start = int(rng.integers(0, length - size))
            runs.append((start, start + size))
        return {"target": t, "accompaniment": a, "shift_target": shift_t,
                "shift_accompaniment": shift_a, "gain_db": gain, "runs": runs}

    def fragment(self, i: int) -> Fragment:
        """Item ``i`` as a waveform :class:`Fragment`."""
        r = self.recipe(i)
        ft, fa = self.fragments[r["target"]], self.fragments[r["accompaniment"]]
        target = gate(np.roll(ft.target, r["shift_target"]), r["runs"])
        acc = np.roll(fa.accompaniment, r["shift_accompaniment"]).astype(np.float64)
        # The accompaniment at the energy of the target fragment's own accompaniment, moved by the
        # drawn gain: the target fragment's natural level ratio (before gating), +- gain_db.
        acc *= np.sqrt(_energy(ft.accompaniment) / max(_energy(acc), 1e-12))
        acc *= 10.0 ** (-r["gain_db"] / 20.0)
        return Fragment(f"remix{i}:{ft.id}+{fa.id}", target, acc.astype(np.float32),
                        group=ft.group, family=ft.family, source=ft.source, meta=r)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} of a set of {len(self)}")
        if i in self._cache:
            return self._cache[i]
        ex = make_example(self.fragment(i))
        if self.cache:
            self._cache[i] = ex
        return ex
