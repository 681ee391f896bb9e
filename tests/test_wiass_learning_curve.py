"""Paper 2's learning curve (dap.wiass.learning_curve): one training scored at several budgets."""

import pytest

from dap.config.profiles import resolve
from dap.wiass.learning_curve import curve_table, learning_curve

SMOKE = resolve("07_wiass_figure2_side_information", "smoke")
EPOCH = 4  # smoke: 4 remixed training examples, batch 1


def _values(rows, budget):
    r = rows[rows["iterations"] == budget]
    return r.set_index(["design", "clip_id", "metric"])["value"].sort_index()


@pytest.fixture(scope="module")
def two_budgets(tmp_path_factory):
    return learning_curve(SMOKE, [EPOCH, 2 * EPOCH], tmp_path_factory.mktemp("curve"), progress=False,
                          configurations=("M2", "BL2"), show=lambda _: None)


def test_a_budget_on_the_way_scores_what_a_training_of_that_budget_keeps(two_budgets, tmp_path):
    alone = learning_curve(SMOKE, [EPOCH], tmp_path, progress=False, configurations=("M2", "BL2"),
                           show=lambda _: None)
    assert _values(two_budgets, EPOCH).equals(_values(alone, EPOCH))
    # and the longer training is not the shorter one (the check above could have failed)
    assert not _values(two_budgets, 2 * EPOCH).values.tolist() == _values(alone, EPOCH).values.tolist()


def test_a_larger_budget_later_continues_the_same_trainings(two_budgets, tmp_path):
    learning_curve(SMOKE, [EPOCH], tmp_path, progress=False, configurations=("M2", "BL2"), show=lambda _: None)
    extended = learning_curve(SMOKE, [EPOCH, 2 * EPOCH], tmp_path, progress=False,
                              configurations=("M2", "BL2"), show=lambda _: None)
    assert _values(extended, 2 * EPOCH).equals(_values(two_budgets, 2 * EPOCH))


def test_budgets_that_do_not_end_an_epoch_are_refused(tmp_path):
    with pytest.raises(ValueError, match="multiple of the epoch length"):
        learning_curve(SMOKE, [EPOCH + 1], tmp_path, progress=False, show=lambda _: None)


def test_the_table_pairs_m2_with_bl2_per_fragment(two_budgets):
    table = curve_table(two_budgets)
    assert list(table["steps"]) == [EPOCH, 2 * EPOCH]
    m2 = two_budgets[(two_budgets["design"] == "M2") & (two_budgets["metric"] == "SDR")]
    bl2 = two_budgets[(two_budgets["design"] == "BL2") & (two_budgets["metric"] == "SDR")]
    gain = (m2.set_index(["iterations", "clip_id"])["value"] - bl2.set_index(["iterations", "clip_id"])["value"])
    assert table.loc[0, "M2 - BL2 SDR (dB)"] == pytest.approx(round(gain.loc[EPOCH].median(), 2))
    assert "M2 alignment_accuracy chance" in table
