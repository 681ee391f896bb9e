"""The claim rule (dap.claims) on synthetic rows, and CLAIMS.md from a results folder."""

import numpy as np
import pandas as pd
import pytest

from dap.claims import rule as claims, table as claims_table
from dap.claims.registry import CLAIMS, UNTESTED
from dap.claims.rule import Claim, ClaimError

CLAIM = Claim(id="t", paper=1, text="A beats B", source="Table 1", notebook="02_table1_gaussian_denoising",
              link="02_table1_gaussian_denoising/table1.md", metric="PSNR", a="A", b="B", dataset="digits")


def rows_of(a_values, b_values, profile="quick", metric="PSNR", dataset="digits"):
    """Tidy rows: design A and B on the same clips c0, c1, ... (oracle rule)."""
    out = []
    for design, values in (("A", a_values), ("B", b_values)):
        for k, v in enumerate(values):
            out.append({"fit_id": f"{design}{k}", "task": "denoise-gaussian", "dataset": dataset, "source": "embedded",
                        "clip_id": f"c{k}", "design": design, "profile": profile, "selection": "oracle",
                        "metric": metric, "value": v, "status": "ok", "best_iteration": 10 * (k + 1)})
    return pd.DataFrame(out)


def clear_effect(shift, n=10, seed=1):
    rng = np.random.default_rng(seed)
    b = 10 + rng.normal(0, 2, n)            # clips differ a lot...
    return b + shift + rng.normal(0, 0.1, n), b  # ...the paired difference hardly at all


def test_a_clear_effect_in_the_papers_direction_is_reproduced():
    e = claims.paired_effect(rows_of(*clear_effect(3.0)), CLAIM)
    assert e.verdict == claims.REPRODUCED
    assert e.n == 10 and 2.8 < e.low < e.mean < e.high < 3.2


def test_the_reversed_effect_is_contradicted():
    assert claims.paired_effect(rows_of(*clear_effect(-3.0)), CLAIM).verdict == claims.CONTRADICTED


def test_a_claim_of_lower_values_is_reproduced_by_a_negative_difference():
    lower = Claim(**{**CLAIM.__dict__, "expect": -1})
    assert claims.paired_effect(rows_of(*clear_effect(-3.0)), lower).verdict == claims.REPRODUCED


def test_zero_effect_is_inconclusive():
    a, b = clear_effect(0.0)
    e = claims.paired_effect(rows_of(a, b), CLAIM)
    assert e.low < 0 < e.high and e.verdict == claims.INCONCLUSIVE


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_clips_can_never_be_reproduced(n):
    a, b = clear_effect(30.0, n=n)
    e = claims.paired_effect(rows_of(a, b), CLAIM)
    assert e.n == n and e.verdict == claims.INCONCLUSIVE


def test_missing_rows_are_not_run():
    assert claims.paired_effect(rows_of([], []), CLAIM).verdict == claims.NOT_RUN
    # rows of the other design only, or of another metric: nothing pairs
    assert claims.paired_effect(rows_of([11.0, 12, 13], []), CLAIM).verdict == claims.NOT_RUN
    assert claims.paired_effect(rows_of(*clear_effect(3.0), metric="PESQ"), CLAIM).verdict == claims.NOT_RUN


def test_a_metric_undefined_on_every_clip_is_not_called_not_run():
    a, b = clear_effect(3.0)
    rows = rows_of([np.nan] * len(a), [np.nan] * len(b))  # e.g. EPS without predicted silence
    assert claims.paired_effect(rows, CLAIM).verdict == claims.UNDEFINED
    assert claims.combine([claims.UNDEFINED, claims.REPRODUCED]) == claims.REPRODUCED


def test_pairs_are_by_clip_and_failed_or_non_finite_rows_are_left_out():
    rows = rows_of([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0])
    rows.loc[(rows.design == "B") & (rows.clip_id == "c0"), "status"] = "failed"
    rows.loc[(rows.design == "A") & (rows.clip_id == "c1"), "value"] = np.inf
    d = claims.paired_differences(rows, CLAIM)
    assert sorted(d.index.get_level_values("clip_id")) == ["c2", "c3"] and np.allclose(d, 4.0)


def test_a_claim_uses_one_profile_the_largest_by_default():
    rows = pd.concat([rows_of(*clear_effect(3.0), profile="quick"), rows_of([1.0], [9.0], profile="smoke")])
    assert claims.paired_effect(rows, CLAIM).profile == "quick"
    e = claims.paired_effect(rows, CLAIM, profile="smoke")
    assert (e.n, e.mean, e.profile) == (1, -8.0, "smoke")


def test_a_no_difference_claim_needs_the_interval_inside_the_margin():
    same = Claim(**{**CLAIM.__dict__, "expect": 0, "margin": 1.0})
    assert claims.paired_effect(rows_of(*clear_effect(0.0)), same).verdict == claims.REPRODUCED
    assert claims.paired_effect(rows_of(*clear_effect(3.0)), same).verdict == claims.CONTRADICTED
    with pytest.raises(ClaimError, match="margin"):
        Claim(**{**CLAIM.__dict__, "expect": 0})


def test_a_constant_reference_and_a_log_iteration_quantity():
    chance = Claim(**{**CLAIM.__dict__, "b": 0.5, "b_label": "chance"})
    assert claims.paired_effect(rows_of([0.9, 0.95, 0.92, 0.97], []), chance).verdict == claims.REPRODUCED
    slower = Claim(**{**CLAIM.__dict__, "quantity": "log10 best_iteration"})
    rows = rows_of([1.0] * 4, [1.0] * 4)
    rows.loc[rows.design == "A", "best_iteration"] *= 10   # A keeps an iterate 10x later on every clip
    e = claims.paired_effect(rows, slower)
    assert np.isclose(e.mean, 1.0) and e.verdict == claims.REPRODUCED


def test_b_may_be_another_metric_of_the_same_design():
    vs_chance = Claim(**{**CLAIM.__dict__, "b": "A", "b_metric": "chance"})
    rows = pd.concat([rows_of([0.5, 0.6, 0.7], []), rows_of([0.1, 0.1, 0.1], [], metric="chance")])
    e = claims.paired_effect(rows, vs_chance)
    assert e.n == 3 and np.isclose(e.mean, 0.5) and e.verdict == claims.REPRODUCED
    with pytest.raises(ClaimError, match="same rows"):
        Claim(**{**CLAIM.__dict__, "b": "A"})


def test_bad_claims_and_rows_get_a_clear_error():
    with pytest.raises(ClaimError, match="expect"):
        Claim(**{**CLAIM.__dict__, "expect": 2})
    with pytest.raises(ClaimError, match="quantity"):
        Claim(**{**CLAIM.__dict__, "quantity": "seconds"})
    with pytest.raises(ClaimError, match="columns"):
        claims.paired_effect(pd.DataFrame({"value": [1.0]}), CLAIM)
    with pytest.raises(ClaimError, match="not a folder"):
        claims_table.write_claims("/nonexistent/results")


def test_best_design_verdicts_join_every_comparison():
    rows = pd.concat([rows_of(*clear_effect(3.0)),
                      rows_of(*clear_effect(2.0, seed=2)).replace({"design": {"A": "A", "B": "C"}}).query("design == 'C'")])
    v = claims.best_design_verdicts(rows, {("digits", "PSNR"): "A"}, ["A", "B", "C"], "oracle")
    assert v.iloc[0]["verdict"] == claims.REPRODUCED and v.iloc[0]["n"] == 10
    v = claims.best_design_verdicts(rows, {("digits", "PSNR"): "B"}, ["A", "B", "C"], "oracle")
    assert v.iloc[0]["verdict"] == claims.CONTRADICTED


def test_the_registry_is_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.paper for c in CLAIMS} == {1, 2}
    assert {"Table 1", "Table 2", "Table 3", "Table 4", "Figure 2"} <= {c.source for c in CLAIMS if c.paper == 1}
    assert all(c.link.endswith(".md") for c in CLAIMS)


def test_claims_md_lists_every_registered_claim_from_partial_results(tmp_path):
    folder = tmp_path / "02_table1_gaussian_denoising"
    folder.mkdir()
    a, b = clear_effect(3.0)
    rows = rows_of(a, b).replace({"design": {"A": "dilated_exp_dense", "B": "conv"}})
    rows.to_csv(folder / "rows.csv", index=False)
    path = claims_table.write_claims(tmp_path, profile="quick")
    text = path.read_text()
    for c in CLAIMS:
        assert f"| {c.id} |" in text
    for _, _, claim, _ in UNTESTED:
        assert claim in text
    assert f"{len(CLAIMS) + len(UNTESTED)} claims" in text
    table = pd.read_csv(tmp_path / "CLAIMS.csv")
    hit = table.set_index("id").loc["P1-T1-1-digits-PSNR"]
    assert hit["verdict"] == claims.REPRODUCED and hit["n"] == 10
    assert (table[table["id"].str.startswith("P2")]["verdict"] == claims.NOT_RUN).all()
    assert "](02_table1_gaussian_denoising/table1.md)" in text


def test_paper2_claims_read_the_rows_notebook_07_writes(tmp_path):
    folder = tmp_path / "07_wiass_figure2_side_information"
    folder.mkdir()
    a, b = clear_effect(1.5, n=6)
    rows = rows_of(a, b, metric="SDR", dataset="stems").replace({"design": {"A": "BL2", "B": "BL1"}})
    rows = rows.assign(task="wiass", selection="best-validation")
    align = rows[rows.design == "BL2"].assign(design="M2", metric="alignment_accuracy", value=0.6)
    chance = align.assign(metric="chance_alignment_accuracy", value=0.004)  # stored per fragment by notebook 07
    pd.concat([rows, align, chance]).to_csv(folder / "rows.csv", index=False)
    table = claims_table.evaluate_claims(tmp_path).set_index("id")
    assert table.loc["P2-bl2-bl1-SDR", "verdict"] == claims.REPRODUCED
    assert table.loc["P2-M2-align", "verdict"] == claims.REPRODUCED and table.loc["P2-M2-align", "n"] == 6
    assert np.isclose(table.loc["P2-M2-align", "mean"], 0.596)
    assert table.loc["P2-M1-BL1-SDR", "verdict"] == claims.NOT_RUN


def test_inconclusive_claims_name_the_run_that_would_decide_them(tmp_path):
    """A one-clip Table 1 and a 6-fragment paper-2 result: CLAIMS.md says what the paper profile
    would fit to decide them (its n, fits, fit-iterations and CPU hours from dap.config.costs)."""
    table1, wiass = tmp_path / "02_table1_gaussian_denoising", tmp_path / "07_wiass_figure2_side_information"
    table1.mkdir()
    wiass.mkdir()
    rows_of([9.0], [8.0]).replace({"design": {"A": "dilated_exp_dense", "B": "conv"}}).to_csv(
        table1 / "rows.csv", index=False)
    zero = rows_of([1.0, 2.0, 3.0], [2.0, 1.0, 3.0], metric="SDR", dataset="stems")
    zero.replace({"design": {"A": "M2", "B": "M1"}}).assign(task="wiass", selection="best-validation").to_csv(
        wiass / "rows.csv", index=False)
    text = claims_table.write_claims(tmp_path, profile="quick").read_text()
    section = text.split("## What would decide the inconclusive claims")[1].split("## Claims the rows")[0]
    t1 = next(line for line in section.splitlines() if "[Table 1]" in line)
    assert "| 1 | 1 | 50 | 600 | 1,200,000 |" in t1  # 1 claim at n = 1; 3 data sets x 50 clips x 4 designs
    hours = float(t1.rsplit("|", 2)[1].strip(" ~").replace(",", ""))
    assert 100 < hours < 1000  # 1.2 M iterations at 0.57-1.01 s, speech clips twice as long
    assert "test fragments of the real corpus" in next(line for line in section.splitlines() if "(paper 2)" in line)
    assert "06_figure2_convergence" not in section  # no harmonic fit ran: Figure 2 is not run, not inconclusive


def test_study_cost_counts_the_fits_of_a_profile():
    from dap.config.costs import study_cost

    quick = study_cost("02_table1_gaussian_denoising", "quick")
    assert quick["fits"] == 3 * quick["n"] * 4 and quick["fit_iterations"] == quick["fits"] * 150
    assert study_cost("05_table4_separation", "quick")["cpu_hours"] is None  # small priors: no measured cost
    assert study_cost("07_wiass_figure2_side_information", "paper") is None  # trains models, fits no prior
    stopping = study_cost("11_blind_stopping", "paper")
    assert stopping["fits"] == 10 * 5 * 2 and stopping["fit_iterations"] == stopping["fits"] * 1500
