"""Paper 2's reference levels: the constant mask, chance levels of the alignment measures and the
content-blind aligner (dap.wiass.references)."""

import numpy as np
import pytest
import torch

from dap.wiass import data as D
from dap.wiass import examples as E
from dap.wiass.references import (alignment_references, alignment_scores, chance_levels,
                                  constant_mask, l1_loss, proportional_attention,
                                  reference_magnitude)
from dap.wiass.side_info import make_side_info


@pytest.fixture(scope="module")
def small_set():
    return E.SpectrogramSet(D.synthetic_fragments(3, seed=4, length=16384, silent_seconds=0))


def test_constant_mask_minimises_the_l1_loss(small_set):
    mask = constant_mask(small_set)
    assert mask.shape == (D.N_FREQ,) and torch.all(mask >= 0)
    best = l1_loss("constant-mask", small_set, mask)
    rng = np.random.default_rng(0)
    for _ in range(5):  # any perturbation of the weighted-median mask costs more
        other = mask * torch.from_numpy(rng.uniform(0.8, 1.2, D.N_FREQ).astype(np.float32))
        assert l1_loss("constant-mask", small_set, other) > best
    assert best < l1_loss("silence", small_set)  # the tone bursts are far from silence
    assert l1_loss("oracle", small_set) == 0.0


def test_reference_magnitudes_and_errors(small_set):
    ex = small_set[0]
    assert torch.count_nonzero(reference_magnitude("silence", ex)) == 0
    with pytest.raises(ValueError, match="needs the fitted mask"):
        reference_magnitude("constant-mask", ex)
    with pytest.raises(ValueError, match="unknown reference"):
        reference_magnitude("median", ex)
    with pytest.raises(ValueError, match="no training examples"):
        constant_mask([])


def _activity(n=64):
    a = np.ones(n, dtype=np.float32)
    a[10:20] = 0
    a[40:52] = 0
    return a


@pytest.mark.parametrize("kind", ["M2", "A1", "A2", "A3.1", "A3.2"])
def test_chance_levels_match_a_random_argmax(kind):
    side = make_side_info(kind, _activity(), np.random.default_rng(1), length=90)
    chance = chance_levels(side, mask_padding=True)
    rng = np.random.default_rng(2)
    content = np.flatnonzero(side.mask)
    draws = []
    for _ in range(400):  # uniformly random one-hot attention over the content steps
        att = np.zeros((side.n_frames, side.n_steps))
        att[np.arange(side.n_frames), rng.choice(content, side.n_frames)] = 1
        draws.append(alignment_scores(att, side))
    for key, value in chance.items():
        mc = np.mean([d[key] for d in draws])
        assert mc == pytest.approx(value, abs=0.01), key
    assert chance_levels(side, mask_padding=False)["segment_accuracy"] < chance["segment_accuracy"]


def test_content_blind_aligner_is_exact_without_deletions_and_not_after():
    rng = np.random.default_rng(3)
    for kind in ("M2", "A1"):
        side = make_side_info(kind, _activity(), rng, length=90)
        att = proportional_attention(side)
        assert alignment_scores(att, side)["alignment_accuracy"] == 1.0
    side = make_side_info("A3.1", _activity(), rng, length=90)
    scores = alignment_scores(proportional_attention(side), side)
    assert scores["alignment_accuracy"] < 1.0 and scores["segment_accuracy"] > 0.5
    refs = alignment_references(side)
    assert {"chance_alignment_accuracy", "proportional_segment_accuracy"} <= set(refs)


def test_segment_accuracy_is_undefined_on_a_single_run():
    side = make_side_info("A1", np.ones(32, dtype=np.float32), np.random.default_rng(0), length=40)
    scores = alignment_scores(proportional_attention(side), side)
    assert np.isnan(scores["segment_accuracy"])  # every argmax on content would "hit"
    assert "chance_segment_accuracy" not in alignment_references(side)


def test_the_reference_aligners_are_rows_of_the_alignment_table():
    """Figure 3's table shows chance and the content-blind aligner as rows beside the models, per
    side information (the unguided models share their guided twin's references)."""
    import pandas as pd

    from dap.wiass.figure3 import alignment_table

    per_fragment = pd.DataFrame({
        "configuration": ["M2", "M2", "M2 (unguided)", "M2 (unguided)"], "clip_id": ["a", "b", "a", "b"],
        "alignment_accuracy": [0.03, 0.05, 0.01, 0.02], "chance_alignment_accuracy": [0.004, 0.004, 0.004, 0.004],
        "proportional_alignment_accuracy": [1.0, 0.9, 1.0, 0.9]})
    table = alignment_table(per_fragment).set_index("configuration")
    assert list(table.index) == ["M2", "M2 (unguided)", "chance: uniform argmax (M2 side information)",
                                 "content-blind aligner (M2 side information)"]
    assert table.loc["content-blind aligner (M2 side information)", "alignment_accuracy"] == pytest.approx(0.95)
    assert table.loc["M2", "proportional_alignment_accuracy"] == pytest.approx(0.95)
