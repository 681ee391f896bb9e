"""Remixed training examples and gated evaluation fragments (dap.wiass.remix)."""

import numpy as np
import pytest

from dap.wiass import data as D
from dap.wiass.remix import FADE, RemixSet, gate, gated_fragments, silent_runs


def test_gate_makes_exact_zeros_with_faded_edges():
    x = np.ones(4000, dtype=np.float32)
    y = gate(x, [(1000, 2000), (3000, 3500)])
    assert np.all(y[1000:2000] == 0) and np.all(y[3000:3500] == 0)
    assert np.all(y[: 1000 - FADE] == 1) and y[2000 + FADE] == 1
    edge = y[1000 - FADE:1000]
    assert np.all(np.diff(edge) <= 0) and 0 < edge[-1] < 0.05  # fades out, no click
    with pytest.raises(ValueError, match="outside"):
        gate(x, [(3900, 4100)])


def test_gated_fragments_have_two_silent_runs_on_the_frame_grid():
    frags = D.synthetic_fragments(3, seed=2, length=8 * 16000, silent_seconds=0)
    gated = gated_fragments(frags, seed=0)
    for f, g in zip(frags, gated):
        assert silent_runs(f.target) == 0 and silent_runs(g.target) >= 2
        assert g.id.endswith("+gated") and len(g.meta["gated_frames"]) == silent_runs(g.target)
        np.testing.assert_array_equal(g.accompaniment, f.accompaniment)
    again = gated_fragments(frags, seed=0)
    assert all(np.array_equal(a.target, b.target) for a, b in zip(gated, again))
    done = gated_fragments(gated, seed=1)  # already enough runs: unchanged
    assert [f.id for f in done] == [f.id for f in gated]


def test_remix_items_are_seeded_distinct_and_keep_the_level_ratio():
    frags = D.synthetic_fragments(4, seed=3, length=32768, silent_seconds=0)
    a, b = RemixSet(frags, 6, seed=1), RemixSet(frags, 6, seed=1)
    assert len(a) == 6 and a.recipe(5) == b.recipe(5)
    np.testing.assert_array_equal(a[5].mixture_mag.numpy(), b[5].mixture_mag.numpy())
    assert RemixSet(frags, 6, seed=2).recipe(5) != a.recipe(5)
    mags = [a[i].mixture_mag.numpy() for i in range(6)]
    assert all(not np.array_equal(mags[0], m) for m in mags[1:])
    for i in range(6):
        f, r = a.fragment(i), a.recipe(i)
        assert np.any(f.target == 0)  # gated runs are exact silence
        own = frags[r["target"]]
        ratio_db = 10 * np.log10(np.sum(own.accompaniment.astype(float) ** 2)
                                 / np.sum(f.accompaniment.astype(float) ** 2))
        assert ratio_db == pytest.approx(r["gain_db"], abs=0.01)
    with pytest.raises(IndexError):
        a[6]
