"""Side information of paper 2, section 4.3: lengths, padding, deletions, shifts, alignments."""

import numpy as np
import pytest
import torch

from dap.wiass.side_info import (
    KINDS,
    PAD_VALUE,
    PAPER_ACTIVITY_THRESHOLD,
    activity_from_target,
    alignment_accuracy,
    alignment_matrix,
    binarize,
    make_side_info,
    segment_accuracy,
    stack_side_info,
    total_magnitude,
)

ACT = np.array([0, 0, 1, 1, 1, 0, 0, 1], dtype=np.float32)
# Longer runs so that A2/A3 really delete steps.
LONG = np.array([0] * 6 + [1] * 5 + [0] * 1 + [1] * 8 + [0] * 4, dtype=np.float32)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def runs(x: np.ndarray) -> list[tuple[float, int]]:
    """(value, length) of each run."""
    out: list[tuple[float, int]] = []
    for v in x:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def content(info) -> np.ndarray:
    return info.values[info.mask, 0]


def test_m1_is_the_sequence_itself_and_aligned():
    info = make_side_info("M1", ACT, rng())
    assert info.values.shape == (8, 1) and info.values.dtype == np.float32
    np.testing.assert_array_equal(info.values[:, 0], ACT)
    np.testing.assert_array_equal(info.alignment, np.arange(8))
    assert info.mask.all()


def test_m2_pads_with_100_and_alignment_is_an_offset():
    lefts = set()
    for seed in range(20):
        info = make_side_info("M2", ACT, rng(seed), length=20)
        left = info.left_pad
        lefts.add(left)
        assert info.values.shape == (20, 1)
        assert 0 <= left <= 12
        assert np.all(info.values[:left] == PAD_VALUE)
        assert np.all(info.values[left + 8:] == PAD_VALUE)
        np.testing.assert_array_equal(info.values[left:left + 8, 0], ACT)
        np.testing.assert_array_equal(info.alignment, np.arange(8) + left)
        np.testing.assert_array_equal(info.mask, info.values[:, 0] != PAD_VALUE)
    assert len(lefts) > 3  # the split is random


def test_padding_split_can_be_fixed_and_is_checked():
    info = make_side_info("M2", ACT, rng(), length=20, left=12)
    np.testing.assert_array_equal(info.values[12:, 0], ACT)
    with pytest.raises(ValueError, match="left padding"):
        make_side_info("M2", ACT, rng(), length=20, left=13)
    with pytest.raises(ValueError, match="do not fit"):
        make_side_info("M2", ACT, rng(), length=7)


def test_default_length_is_300():
    for kind in KINDS[1:]:
        assert make_side_info(kind, np.ones(256), rng()).values.shape == (300, 1)


def test_a1_binarises_and_pads():
    mag = ACT * np.array([0.05, 0.3, 2.0, 0.2, 0.5, 0.0, 0.7, 0.01])
    info = make_side_info("A1", mag, rng(), length=12)
    np.testing.assert_array_equal(content(info), ACT)
    paper = make_side_info("A1", mag, rng(), length=12, threshold=PAPER_ACTIVITY_THRESHOLD)
    np.testing.assert_array_equal(content(paper), [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(info.alignment, np.arange(8) + info.left_pad)


def check_shortened(info, x: np.ndarray, shortened: tuple[int, ...]):
    """Runs kept in order; shortened runs keep between ceil(L/2) and L - 1 steps (L >= 2)."""
    before, after = runs(x), runs(content(info))
    assert [v for v, _ in before] == [v for v, _ in after]  # no run vanishes or merges
    for (v, n0), (_, n1) in zip(before, after):
        if v in shortened and n0 >= 2:
            assert n0 - n0 // 2 <= n1 <= n0 - 1
        else:
            assert n1 == n0
    # Kept frames map to a step holding their own value; deleted frames map to -1.
    kept = info.alignment >= 0
    np.testing.assert_array_equal(info.values[info.alignment[kept], 0], x[kept])
    assert (~kept).sum() == len(x) - info.mask.sum()
    # Alignment is strictly increasing over kept frames (order preserved) and within the content.
    assert np.all(np.diff(info.alignment[kept]) > 0)
    assert np.all(info.mask[info.alignment[kept]])


@pytest.mark.parametrize("seed", range(10))
def test_a2_shortens_only_runs_of_zeros(seed):
    info = make_side_info("A2", LONG, rng(seed), length=30)
    assert info.values.shape == (30, 1)
    check_shortened(info, LONG, shortened=(0,))
    assert info.mask.sum() < len(LONG)
    np.testing.assert_array_equal(info.values[~info.mask, 0], PAD_VALUE)


@pytest.mark.parametrize("seed", range(10))
def test_a31_shortens_zeros_and_ones(seed):
    info = make_side_info("A3.1", LONG, rng(seed), length=30)
    check_shortened(info, LONG, shortened=(0, 1))


def test_short_example_by_hand():
    # Runs 00 / 111 / 00 / 1: each run of length >= 2 loses exactly 1 step (floor(L/2) = 1).
    info = make_side_info("A3.1", ACT, rng(3), length=10)
    np.testing.assert_array_equal(content(info), [0, 1, 1, 0, 1])
    assert (info.alignment == -1).sum() == 3
    assert info.alignment[7] == info.left_pad + 4  # the lone 1 is never deleted


def test_deleted_frames_keep_their_run():
    info = make_side_info("A3.1", LONG, rng(1), length=30)
    seg_of_step = info.step_segment
    for n in range(len(LONG)):
        steps = np.flatnonzero(seg_of_step == info.frame_segment[n])
        assert len(steps) >= 1 and np.all(info.values[steps, 0] == LONG[n])


def test_a32_is_a31_circularly_shifted():
    a31 = make_side_info("A3.1", LONG, rng(5))
    a32 = make_side_info("A3.2", LONG, rng(5))  # same draws, then the shift
    np.testing.assert_array_equal(a32.values, np.roll(a31.values, 100, axis=0))
    kept = a31.alignment >= 0
    np.testing.assert_array_equal(a32.alignment[kept], (a31.alignment[kept] + 100) % 300)
    np.testing.assert_array_equal(a32.alignment[~kept], -1)
    assert a32.shift == 100
    np.testing.assert_array_equal(a32.values[a32.alignment[kept], 0], LONG[kept])
    # A custom shift wraps modulo M.
    a32b = make_side_info("A3.2", LONG, rng(5), length=30, shift=25)
    a31b = make_side_info("A3.1", LONG, rng(5), length=30)
    kb = a31b.alignment >= 0
    np.testing.assert_array_equal(a32b.alignment[kb], (a31b.alignment[kb] + 25) % 30)


def test_same_seed_same_side_info():
    for kind in KINDS:
        a, b = make_side_info(kind, LONG, rng(7), 30), make_side_info(kind, LONG, rng(7), 30)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.alignment, b.alignment)


def test_activity_and_total_magnitude():
    spec = np.zeros((5, 4), dtype=np.float32)
    spec[1, 2] = 0.05
    spec[3] = 1.0
    np.testing.assert_array_equal(activity_from_target(spec), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(activity_from_target(torch.from_numpy(spec), threshold=0.1),
                                  [0, 0, 0, 1, 0])
    np.testing.assert_allclose(total_magnitude(spec), [0, 0.05, 0, 4, 0])
    frames = np.array([[0.0, 0.0], [-0.2, 0.1], [0.0, 0.0]])  # waveform frames: sign ignored
    np.testing.assert_array_equal(activity_from_target(frames), [0, 1, 0])
    np.testing.assert_array_equal(binarize(np.array([0.0, 0.1, 0.09]), 0.1), [0, 1, 0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="kind"):
        make_side_info("A3", ACT, rng())
    with pytest.raises(ValueError):
        make_side_info("M1", np.zeros((3, 2)), rng())
    with pytest.raises(ValueError, match="NaN"):
        make_side_info("A1", np.array([0.0, np.nan]), rng(), length=4)


def test_alignment_accuracy_perfect_and_off_by_one():
    info = make_side_info("A2", LONG, rng(2), length=30)
    perfect = alignment_matrix(info)
    np.testing.assert_allclose(perfect.sum(1), 1.0)
    assert alignment_accuracy(perfect, info.alignment) == (1.0, 0.0)
    assert segment_accuracy(perfect, info.frame_segment, info.step_segment) == 1.0

    diag = np.eye(8, 10)
    assert alignment_accuracy(torch.from_numpy(diag), np.arange(8)) == (1.0, 0.0)
    acc, dist = alignment_accuracy(diag, np.arange(8) + 1)
    assert acc == 0.0 and dist == 1.0
    acc, _ = alignment_accuracy(diag, np.array([0, 1, -1, -1, 4, 9, 9, 9]))
    assert acc == 0.5  # frames with -1 are skipped
    with pytest.raises(ValueError, match="all -1"):
        alignment_accuracy(diag, -np.ones(8, dtype=int))


def test_stack_side_info():
    items = [make_side_info("A1", ACT, rng(s), length=12) for s in range(3)]
    values, mask = stack_side_info(items)
    assert values.shape == (3, 12, 1) and mask.shape == (3, 12) and mask.sum() == 24
    with pytest.raises(ValueError, match="differ"):
        stack_side_info([items[0], make_side_info("M1", ACT, rng())])
