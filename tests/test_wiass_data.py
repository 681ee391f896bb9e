"""Paper 2 data: 513 x 256 spectrograms, normalisation, augmentation, splits, side information."""

import numpy as np
import pytest
import torch

from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DatasetError
from dap.wiass import configurations as C
from dap.wiass import data as D
from dap.wiass import examples as E
from dap.wiass.side_info import PAD_VALUE

SHORT = 32768  # 2.048 s: 64 frames, keeps the tests fast


def test_stft_gives_the_papers_513_by_256_and_inverts_exactly():
    x = np.random.default_rng(0).standard_normal(D.FRAGMENT).astype(np.float32)
    spec = D.wiass_stft(x)
    assert spec.shape == (256, 513) and spec.is_complex()
    assert D.wiass_stft(np.stack([x, x])).shape == (2, 256, 513)
    y = D.wiass_istft(spec).numpy()
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((x - y) ** 2))
    assert snr > 100
    with pytest.raises(ValueError, match="513"):
        D.wiass_istft(spec[:, :100])


def test_silent_stretches_stay_exactly_silent_in_the_spectrogram():
    x = np.zeros(SHORT, dtype=np.float32)
    x[16000:] = 0.5
    mag = D.wiass_stft(x).abs()
    # Frames whose 1024-sample window lies entirely in the zeros are exactly zero.
    assert torch.count_nonzero(mag[: (16000 - 512) // 512]) == 0
    assert torch.count_nonzero(mag[40]) > 0


def test_both_spectrograms_are_normalised_by_the_mixture_maximum():
    frag = D.synthetic_fragments(1, seed=3, length=SHORT)[0]
    mix, tgt, scale = D.normalised_magnitudes(frag.mixture, frag.target)
    assert mix.shape == tgt.shape == (64, 513)
    assert float(mix.max()) == pytest.approx(1.0)
    assert scale == pytest.approx(float(D.wiass_stft(frag.mixture).abs().max()))
    # The target keeps its level relative to the mixture: scaling back gives its own magnitude.
    torch.testing.assert_close(tgt * scale, D.wiass_stft(frag.target).abs(), rtol=1e-5, atol=1e-6)
    with pytest.raises(DatasetError, match="silent"):
        D.normalised_magnitudes(np.zeros(SHORT), np.zeros(SHORT))


def test_augmentation_is_reproducible_and_order_independent():
    frags = D.synthetic_fragments(3, seed=0, length=SHORT)
    a = E.SpectrogramSet(frags, copies=2, seed=5, circular_shift=True)
    b = E.SpectrogramSet(frags, copies=2, seed=5, circular_shift=True)
    assert len(a) == 6
    first = [a[i].mixture_mag for i in range(6)]
    backwards = [b[i].mixture_mag for i in reversed(range(6))][::-1]
    for x, y in zip(first, backwards):
        assert torch.equal(x, y)
    c = E.SpectrogramSet(frags, copies=2, seed=6, circular_shift=True)
    assert not torch.equal(c[0].mixture_mag, a[0].mixture_mag)
    augs = [a.augmentation(i) for i in range(6)]
    assert len({(g.gain_db, g.semitones, g.shift) for g in augs}) == 6
    assert all(-2 <= g.gain_db <= 2 and -2 <= g.semitones <= 2 for g in augs)
    assert E.SpectrogramSet(frags).augmentation(0) is None  # validation / test: no augmentation


def test_gain_moves_the_energy_ratio_by_the_drawn_decibels():
    frag = D.synthetic_fragments(1, seed=1, length=SHORT)[0]
    t, a = D.apply_augmentation(frag, D.Augmentation(gain_db=1.5))
    before = 10 * np.log10(np.sum(frag.target ** 2) / np.sum(frag.accompaniment ** 2))
    after = 10 * np.log10(np.sum(t.astype(float) ** 2) / np.sum(a.astype(float) ** 2))
    assert after - before == pytest.approx(1.5, abs=1e-3)


def test_circular_shift_rolls_both_stems():
    frag = D.synthetic_fragments(1, seed=1, length=SHORT)[0]
    t, a = D.apply_augmentation(frag, D.Augmentation(shift=1234))
    np.testing.assert_array_equal(t, np.roll(frag.target, 1234))
    np.testing.assert_array_equal(a, np.roll(frag.accompaniment, 1234))
    rng = np.random.default_rng(0)
    assert D.draw_augmentation(rng, circular_shift=False).shift == 0


def test_pitch_shift_moves_a_tone_by_half_tones_and_keeps_silence_exact():
    t = np.arange(SHORT) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = D.pitch_shift(tone, 2)
    assert y.shape == tone.shape
    spectrum = np.abs(np.fft.rfft(y[4000:-4000], n=SHORT))
    peak = np.fft.rfftfreq(SHORT, 1 / SAMPLE_RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(440 * 2 ** (2 / 12), rel=0.01)
    frag = D.synthetic_fragments(1, seed=2, length=SHORT, silent_seconds=1)[0]
    silent = frag.target == 0
    tgt, _ = D.apply_augmentation(frag, D.Augmentation(semitones=-2))
    assert np.all(tgt[silent] == 0)                 # the silent second is still digital silence
    assert np.count_nonzero(tgt) > 0.3 * SHORT


def _fragments_with_groups():
    frags = []
    for fam, n_groups in (("guitar", 8), ("vocals", 4), ("choir", 4), ("solo", 2)):
        for g in range(n_groups):
            for j in range(2 if fam == "guitar" else 1):
                f = D.synthetic_fragments(1, seed=len(frags), length=2048)[0]
                f.id, f.group, f.family = f"{fam}-{g}-{j}", f"{fam}-{g}", fam
                frags.append(f)
    return frags


def test_splits_are_disjoint_by_recording_and_stratified():
    frags = _fragments_with_groups()
    splits = D.split_groups(frags)
    groups = {name: {f.group for f in fs} for name, fs in splits.items()}
    assert not groups["train"] & groups["valid"] and not groups["train"] & groups["test"]
    assert not groups["valid"] & groups["test"]
    assert sum(len(v) for v in splits.values()) == len(frags)
    assert [len(splits[s]) for s in D.SPLITS] == [14 + 2, 4, 6]  # the family of 2 trains only
    for fam in ("guitar", "vocals", "choir"):
        assert any(f.family == fam for f in splits["test"])
        assert any(f.family == fam for f in splits["valid"])
    again = D.split_groups(list(reversed(frags)))  # input order does not matter
    assert {k: [f.id for f in v] for k, v in again.items()} == \
        {k: [f.id for f in v] for k, v in splits.items()}


def test_embedded_stems_split_14_4_6():
    splits = D.load_splits("embedded")
    assert [len(splits[s]) for s in D.SPLITS] == [14, 4, 6]
    groups = {name: {f.group for f in fs} for name, fs in splits.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["valid"] & groups["test"])
    assert sum(f.silent_frames() for f in splits["test"]) > 0  # PES is defined on the test set
    one = D.load_splits("embedded", n_train=2, n_valid=1, n_test=1)
    assert [len(one[s]) for s in D.SPLITS] == [2, 1, 1]
    assert one["test"][0].silent_frames() > 0  # silent fragments come first when cutting down
    assert {f.id for f in one["train"]} <= {f.id for f in splits["train"]}


def test_side_information_of_an_example():
    frag = D.synthetic_fragments(1, seed=4, length=SHORT, silent_seconds=1)[0]
    ex = E.make_example(frag)
    frames = ex.frames
    assert frames.shape == (64,)
    assert np.any(frames == 0) and np.any(frames > 0)  # exact silence survives the STFT
    m1 = C.fixed_side_info("M1", ex, seed=0)
    np.testing.assert_allclose(m1.values[:, 0], frames)
    assert C.fixed_side_info(None, ex, seed=0) is None
    ones = C.fixed_side_info("ones", ex, seed=0)
    assert ones.values.shape == (64, 1) and np.all(ones.values == 1)
    a31 = C.fixed_side_info("A3.1", ex, seed=0)
    a32 = C.fixed_side_info("A3.2", ex, seed=0)
    assert a31.values.shape == (300, 1) and np.any(a31.values == PAD_VALUE)
    np.testing.assert_array_equal(a32.values, np.roll(a31.values, 100, axis=0))
    again = C.fixed_side_info("A3.1", ex, seed=0)
    np.testing.assert_array_equal(again.values, a31.values)  # fixed per example and seed


def test_configurations_and_fragment_checks():
    assert C.side_kind("A3.2") == "A3.2" and C.side_kind("BL1") is None
    assert C.EVALUATIONS["A3.2"] == "A3.1"
    with pytest.raises(ValueError, match="unknown configuration"):
        C.side_kind("M3")
    with pytest.raises(DatasetError, match="differ"):
        D.Fragment("x", np.zeros(10), np.zeros(12))
    with pytest.raises(DatasetError, match="NaN"):
        D.Fragment("x", np.full(10, np.nan), np.zeros(10))
