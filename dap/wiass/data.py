"""Data of paper 2: 8.192-s fragments, their magnitude spectrograms, splits and augmentation.

Fragments. A :class:`Fragment` is one mono 16 kHz excerpt of ``L = 131072`` samples (8.192 s; the
paper's "8.2 seconds") with its target (vocals in the paper) and accompaniment; the mixture is their
sum. Targets keep their exact digital zeros where the source is inactive: PES / EPS and the
activity side information rely on them.

Spectrogram (section 4.1): FFT length 1024, periodic Hamming window, hop 512, giving F = 513 bins.
A centred STFT of L samples has ``L / 512 + 1 = 257`` frames; the last one is centred on sample L,
i.e. half of it is padding past the end. We drop it (as :func:`dap.core.audio.stft` does for paper 1)
and keep **N = 256** frames, the paper's ``513 x 256``. The inverse is ``torch.istft`` with the same
window: every sample is still covered by frames whose Hamming window is non-zero (the window never
reaches zero), so the round trip is exact to float precision. Padding at the edges is zeros
(``pad_mode="constant"``) so silent edges stay exactly silent. Spectrograms are **time-major**
``(N, F)``, the layout of :class:`dap.wiass.model.InformedSeparator`.

Normalisation. The paper divides "each magnitude spectrogram by its maximum value". Dividing the
target by *its own* maximum would make the scale of the model's output unknowable at test time
(the target's maximum is the answer), so here **both mixture and target are divided by the
mixture's maximum** ``s = max |X|``: the mixture lies in [0, 1], the target keeps its level
relative to the mixture (it is usually <= 1, but may exceed 1 in a bin where the sources cancel),
and a prediction is mapped back to the signal's scale by multiplying with ``s``, which is known
from the mixture. The side information (M1's total magnitude) is computed on this normalised
target, the scale on which the paper's activity threshold 0.1 was stated.

Splits. Embedded stems (24 fragments from 16 recordings: 8 Frets-on-Fire songs with two
fragments each, 4 Scratch vocal mixes, 4 rendered chorales): fragments of one recording stay in
one split, and each family (``instrument``: lead guitar / vocals / soprano) is split on its own,
``round(25%)`` of its recordings to test and ``round(15%)`` to validation (at least one each), the
rest to training, from the fixed :data:`SPLIT_SEED`. That gives **14 train / 4 valid / 6 test**
fragments. Real data (MUSDB18-HQ, ``source="real"``): the loader's own splits -- the paper's
80 / 20 train / valid tracks and the 50 test tracks.

Augmentation (section 4.1: "repeated four times on each original fragment"). Each training
fragment yields ``copies`` augmented versions (the originals themselves are not kept, as in the
paper's count 4 x 2038 = 8152); each copy draws from a generator seeded by (seed, fragment id,
copy), so a copy is the same whatever order it is built in:

* target-to-accompaniment energy ratio moved by ``U(-gain_db, +gain_db)`` dB (paper: 2 dB),
  applied as a gain on the target;
* pitch shift of both stems by an integer ``w ~ U{-pitch, ..., pitch}`` half tones (paper: 2;
  :func:`pitch_shift`: phase vocoder + resampling, with the ratio rounded for speed); the target is
  then set back to exact zero in the runs of >= 512 zeros it had before, which the resampling
  filter would otherwise smear by a few samples;
* optionally (``circular_shift=True``, not in the paper) a circular time shift of both stems by a
  uniform number of samples, so that the few silent parts of a small training set move around.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DatasetError
from dap.core.seeds import stable_hash, stream
from dap.data import load_clips
from dap.wiass.fragment import FRAGMENT, SPLITS, Fragment

N_FFT = 1024
HOP = 512
#: F and N of the paper's 513 x 256 spectrograms.
N_FREQ = N_FFT // 2 + 1
N_FRAMES = FRAGMENT // HOP
#: Seed of the embedded train / valid / test split: fixed, independent of the experiment seed.
SPLIT_SEED = 0
#: Shares of each family's recordings that go to test and validation (embedded set).
TEST_SHARE, VALID_SHARE = 0.25, 0.15


# ----------------------------------------------------------------------------- spectrograms
def _window(device=None) -> torch.Tensor:
    return torch.hamming_window(N_FFT, periodic=True, dtype=torch.float32, device=device)


def wiass_stft(x) -> torch.Tensor:
    """Paper 2's complex STFT, time-major (not :func:`dap.core.audio.stft`, paper 1's).

    x: ``(L,)`` or ``(B, L)`` (numpy or tensor). Returns complex64 ``(N, F)`` or ``(B, N, F)``
    with ``N = L // 512`` frames (frame n centred on sample ``512 n``) and F = 513.
    131072 samples -> (256, 513).
    """
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    if t.shape[-1] < N_FFT:
        raise ValueError(f"signal of {t.shape[-1]} samples is shorter than one FFT ({N_FFT})")
    spec = torch.stft(t, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window=_window(t.device),
                      center=True, pad_mode="constant", normalized=False, onesided=True,
                      return_complex=True)
    # 257 frames for 131072 samples: the last is centred on the end, half padding; drop it.
    return spec[..., : t.shape[-1] // HOP].transpose(-1, -2)


def wiass_istft(spec: torch.Tensor, length: int = FRAGMENT) -> torch.Tensor:
    """Inverse of :func:`wiass_stft`: complex ``(N, F)`` or ``(B, N, F)`` -> ``(length,)`` /
    ``(B, length)``."""
    if spec.shape[-1] != N_FREQ:
        raise ValueError(f"wiass_istft expects (..., frames, {N_FREQ}) time-major, "
                         f"got {tuple(spec.shape)}")
    return torch.istft(spec.transpose(-1, -2), n_fft=N_FFT, hop_length=HOP, win_length=N_FFT,
                       window=_window(spec.device), center=True, normalized=False, onesided=True,
                       length=length)


def normalised_magnitudes(mixture, target) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Magnitude spectrograms of mixture and target, both divided by the mixture's maximum.

    mixture, target: ``(L,)``. Returns ``(mixture_mag (N, F), target_mag (N, F), scale)`` with
    ``mixture_mag.max() == 1`` and ``scale`` the mixture's maximum magnitude (multiply a predicted
    normalised magnitude by it to return to the signal's scale).
    """
    mix = wiass_stft(mixture).abs()
    tgt = wiass_stft(target).abs()
    scale = float(mix.max())
    if not scale > 0:
        raise DatasetError("the mixture is silent: its spectrogram cannot be normalised")
    return mix / scale, tgt / scale, scale


def fragment_from_clip(clip) -> Fragment:
    """A :class:`Fragment` from a ``stems`` :class:`dap.data.Clip` (embedded or real)."""
    if not clip.stems or not {"target", "accompaniment"} <= set(clip.stems):
        raise DatasetError(f"clip {clip.id} has no target / accompaniment stems")
    if clip.sr != SAMPLE_RATE:
        raise DatasetError(f"clip {clip.id} is at {clip.sr} Hz; paper 2 works at {SAMPLE_RATE} Hz")
    target = np.asarray(clip.stems["target"], dtype=np.float32)
    acc = np.asarray(clip.stems["accompaniment"], dtype=np.float32)
    if target.shape[0] != FRAGMENT:
        raise DatasetError(f"clip {clip.id} has {target.shape[0]} samples; fragments are {FRAGMENT}")
    meta = dict(clip.meta or {})
    # The recording a fragment comes from: MUSDB track, or the embedded target's original file.
    group = str(meta.get("track") or meta.get("original_file") or clip.id)
    family = str(meta.get("instrument") or "all")
    return Fragment(clip.id, target, acc, group=group, family=family, source=clip.source, meta=meta)


def split_groups(fragments: list[Fragment], seed: int = SPLIT_SEED,
                 test_share: float = TEST_SHARE, valid_share: float = VALID_SHARE
                 ) -> dict[str, list[Fragment]]:
    """Split fragments into train / valid / test by recording, stratified by family.

    Per family with G recordings (sorted, then permuted by ``seed``): ``max(1, round(G * test_share))``
    go to test and ``max(1, round(G * valid_share))`` to validation when ``G >= 3`` (a family of
    one or two recordings goes to training only). Fragments keep their sorted id order.
    """
    by_family: dict[str, list[str]] = {}
    for f in fragments:
        groups = by_family.setdefault(f.family, [])
        if f.group not in groups:
            groups.append(f.group)
    where: dict[str, str] = {}
    for family in sorted(by_family):
        groups = sorted(by_family[family])
        order = stream(seed, stable_hash(family)).permutation(len(groups))
        g = len(groups)
        n_test = max(1, round(g * test_share)) if g >= 3 else 0
        n_valid = max(1, round(g * valid_share)) if g >= 3 else 0
        for rank, i in enumerate(order):
            where[groups[i]] = "test" if rank < n_test else "valid" if rank < n_test + n_valid else "train"
    out = {s: [] for s in SPLITS}
    for f in sorted(fragments, key=lambda f: f.id):
        out[where[f.group]].append(f)
    return out


def _subset(fragments: list[Fragment], n: int | None, seed: int, name: str,
            strict: bool = False) -> list[Fragment]:
    """At most ``n`` fragments of a split (all when None or when the split is smaller, unless
    ``strict``: then a split smaller than ``n`` is an error). Fragments whose target has silent
    1-s frames come first (seeded order within each kind), so that a cut-down test set still
    defines PES."""
    if n is not None and n < 1:
        raise DatasetError(f"n_{name} must be >= 1, got {n}")
    if strict and n is not None and n > len(fragments):
        raise DatasetError(
            f"the {name} split has {len(fragments)} fragments but {n} are asked for: this data is "
            f"too small for these settings (the paper profile needs MUSDB18-HQ-sized data: "
            f"source='real' with data_root). To run on it anyway, pass n_{name}=None (all "
            f"fragments), a stated deviation")
    if n is None or n >= len(fragments):
        return list(fragments)
    rng = stream(seed, stable_hash(name))
    order = rng.permutation(len(fragments))
    order = sorted(order, key=lambda i: fragments[i].silent_frames() == 0)  # stable: silent first
    return sorted((fragments[i] for i in order[:n]), key=lambda f: f.id)


def load_splits(source: str = "embedded", root=None, n_train: int | None = None,
                n_valid: int | None = None, n_test: int | None = None, seed: int = 0,
                strict: bool = False, fragments: int | None = None) -> dict[str, list[Fragment]]:
    """Train / valid / test fragments of the stems data set.

    ``source="embedded"``: the committed set, split by :func:`split_groups` (14 / 4 / 6); ``n_*``
    cut a split down to at most ``n`` (seeded); with ``strict`` a split smaller than its ``n`` is
    a :class:`DatasetError`. ``source="real"``: MUSDB18-HQ under ``root`` (or
    ``DAP_DATA``), the loader's train / valid / test splits; ``n_*`` windows per split spread over
    the tracks (``None``: one window per track). ``source="generated"``: the corpus of
    :mod:`dap.wiass.corpus` in folder ``root``, or built on first use in the cache with
    ``fragments`` in all (default 2750); ``n_*`` cut its splits as for the embedded set. Raises
    :class:`DatasetError` with a message when the data is missing.
    """
    if source == "generated":
        from dap.wiass.corpus import DEFAULT_FRAGMENTS, ensure_corpus, load_corpus  # optional sources

        folder = root if root is not None else ensure_corpus(fragments or DEFAULT_FRAGMENTS)
        splits = load_corpus(folder)
        return {name: _subset(splits[name], n, seed, name, strict)
                for name, n in zip(SPLITS, (n_train, n_valid, n_test))}
    if source == "embedded":
        frags = [fragment_from_clip(c) for c in load_clips("stems", source="embedded")]
        splits = split_groups(frags)
        return {name: _subset(splits[name], n, seed, name, strict)
                for name, n in zip(SPLITS, (n_train, n_valid, n_test))}
    if source == "real":
        out = {}
        for name, n in zip(SPLITS, (n_train, n_valid, n_test)):
            clips = load_clips("stems", n=n, seed=seed, source="real", root=root, split=name)
            out[name] = _subset([fragment_from_clip(c) for c in clips], n, seed, name, strict)
        return out
    raise DatasetError(f"unknown source {source!r}; choose 'embedded', 'generated' or 'real'")


def synthetic_fragments(n: int, seed: int = 0, length: int = FRAGMENT,
                        silent_seconds: int = 2) -> list[Fragment]:
    """``n`` synthetic fragments for tests and demos: a target of harmonic tone bursts that is
    exactly zero during ``silent_seconds`` whole seconds, over an accompaniment of filtered noise
    and a bass tone. Each fragment is its own group."""
    out = []
    t = np.arange(length) / SAMPLE_RATE
    for i in range(n):
        rng = stream(seed, i)
        f0 = rng.uniform(180, 400)
        target = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)) * 0.3
        target *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) ** 2
        seconds = length // SAMPLE_RATE
        for s in rng.choice(seconds, size=min(silent_seconds, seconds), replace=False):
            target[s * SAMPLE_RATE:(s + 1) * SAMPLE_RATE] = 0.0
        noise = np.convolve(rng.standard_normal(length), np.ones(8) / 8, mode="same")
        acc = 0.2 * noise + 0.3 * np.sin(2 * np.pi * rng.uniform(50, 110) * t)
        out.append(Fragment(f"synthetic-{seed}-{i}", target.astype(np.float32),
                            acc.astype(np.float32), source="synthetic"))
    return out


# ----------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Augmentation:
    """One draw of the augmentation: target gain (dB), pitch shift (half tones), circular shift."""

    gain_db: float = 0.0
    semitones: int = 0
    shift: int = 0


def draw_augmentation(rng: np.random.Generator, gain_db: float = 2.0, pitch: int = 2,
                      circular_shift: bool = False, length: int = FRAGMENT) -> Augmentation:
    """Draw gain ``U(-gain_db, gain_db)``, pitch ``U{-pitch..pitch}`` and shift ``U{0..L-1}``
    (always three draws, so changing one option leaves the others' draws unchanged)."""
    g = float(rng.uniform(-gain_db, gain_db)) if gain_db > 0 else 0.0
    w = int(rng.integers(-pitch, pitch + 1)) if pitch > 0 else 0
    s = int(rng.integers(0, length))
    return Augmentation(gain_db=g, semitones=w, shift=s if circular_shift else 0)


def _zero_runs(x: np.ndarray, min_run: int = HOP) -> np.ndarray:
    """bool ``(L,)``: samples inside runs of at least ``min_run`` exact zeros."""
    z = np.concatenate([[False], x == 0, [False]])
    edges = np.flatnonzero(z[1:] != z[:-1])
    mask = np.zeros(x.shape[0], dtype=bool)
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= min_run:
            mask[a:b] = True
    return mask


def pitch_shift(x, semitones: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Shift the pitch of ``x`` (``(L,)`` or ``(C, L)``) by ``semitones`` half tones, keeping its length.

    Phase-vocoder time stretch by ``rate`` then resampling by ``1 / rate`` (the method of
    ``torchaudio.functional.pitch_shift``). ``rate = 2^(-w/12)`` is rounded so that the resampling
    runs between ``sr`` and a multiple of ``sr / 100`` Hz (pitch error below 0.5 %, ~9 cents): with
    the exact rate the two rates share no common divisor and torchaudio's polyphase filter becomes
    huge (seconds to tens of seconds per fragment instead of ~0.2 s).
    """
    x = np.asarray(x, dtype=np.float32)
    if semitones == 0:
        return x.copy()
    step = sr // 100
    stretched_sr = step * round(sr * 2.0 ** (semitones / 12.0) / step)  # = sr / rate, rounded
    rate = sr / stretched_sr
    n_fft, hop = 512, 128
    t = torch.as_tensor(x)
    win = torch.hann_window(n_fft, device=t.device)
    spec = torch.stft(t, n_fft, hop, window=win, return_complex=True)
    advance = torch.linspace(0, np.pi * hop, spec.shape[-2])[..., None]
    spec = AF.phase_vocoder(spec, rate, advance)
    y = torch.istft(spec, n_fft, hop, window=win, length=round(x.shape[-1] / rate))
    y = AF.resample(y, stretched_sr, sr)
    length = x.shape[-1]
    y = y[..., :length] if y.shape[-1] >= length else torch.nn.functional.pad(y, (0, length - y.shape[-1]))
    return y.numpy().astype(np.float32)


def apply_augmentation(fragment: Fragment, aug: Augmentation) -> tuple[np.ndarray, np.ndarray]:
    """The augmented ``(target, accompaniment)``, float32 ``(L,)`` each."""
    target = fragment.target.astype(np.float64) * 10.0 ** (aug.gain_db / 20.0)
    acc = fragment.accompaniment.astype(np.float64)
    if aug.semitones:
        silent = _zero_runs(fragment.target)
        both = pitch_shift(np.stack([target, acc]), aug.semitones)
        target, acc = both[0].astype(np.float64), both[1].astype(np.float64)
        target[silent] = 0.0  # keep the digital silences exact (the shift keeps timing)
    if aug.shift:
        target, acc = np.roll(target, aug.shift), np.roll(acc, aug.shift)
    return target.astype(np.float32), acc.astype(np.float32)
