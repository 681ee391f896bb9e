"""The claim rule (dap.claims.paired_test, dap.claims.rule) on constructed rows, and CLAIMS.md from a results folder."""

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dap.claims import paired_test
from dap.claims import rule as claims, table as claims_table
from dap.claims.registry import CLAIMS, NO_CHANGE_DB, UNTESTED, references_of
from dap.claims.rule import Claim, ClaimError

CLAIM = Claim(id="t", paper=1, text="A beats B", source="Table 1", notebook="02_table1_gaussian_denoising",
              link="02_table1_gaussian_denoising/table1.md", metric="PSNR", a="A", b="B", dataset="digits")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "claims.md"


def rows_of(a_values, b_values, profile="quick", metric="PSNR", dataset="digits", designs=("A", "B"),
            selections=("oracle", "oracle")):
    """Tidy rows: designs A and B on the same clips c0, c1, ..."""
    out = []
    for design, values, selection in zip(designs, (a_values, b_values), selections):
        for k, v in enumerate(values):
            out.append({"fit_id": f"{design}{k}", "task": "denoise-gaussian", "dataset": dataset, "source": "embedded",
                        "clip_id": f"c{k}", "design": design, "profile": profile, "selection": selection,
                        "metric": metric, "value": v, "status": "ok", "best_iteration": 10 * (k + 1)})
    return pd.DataFrame(out)


def clear_effect(shift, n=10, seed=1):
    rng = np.random.default_rng(seed)
    b = 10 + rng.normal(0, 2, n)            # clips differ a lot...
    return b + shift + rng.normal(0, 0.1, n), b  # ...the paired difference hardly at all


# ----------------------------------------------------------------------------- the exact test
def _brute_force_p(d, strata):
    """P(T >= t_obs) by enumerating every sign vector of the (stratified) signed-rank statistic."""
    ranks, positive = paired_test._scores(np.asarray(d, float), np.asarray(strata))
    t_obs = ranks[positive].sum()
    flips = np.array(list(itertools.product([0, 1], repeat=len(ranks))))
    return float(np.mean(flips @ ranks >= t_obs))


def test_the_smallest_p_with_n_clips_is_two_to_the_minus_n():
    for n in (3, 5, 9):
        t = paired_test.paired_test(np.arange(1, n + 1, dtype=float))
        assert t.p_greater == pytest.approx(0.5 ** n) and t.p_min == pytest.approx(0.5 ** n)
        assert t.p_less == 1.0


def test_exact_p_values_agree_with_scipy_and_with_enumeration():
    rng = np.random.default_rng(3)
    for n in (4, 7, 10):
        d = rng.normal(0.5, 1, n)
        t = paired_test.paired_test(d)
        assert t.p_greater == pytest.approx(stats.wilcoxon(d, alternative="greater", method="exact").pvalue)
        assert t.p_less == pytest.approx(stats.wilcoxon(d, alternative="less", method="exact").pvalue)
    tied = np.array([1.0, -1.0, 2.0, 2.0, 0.0, 3.0, -0.5])  # ties and a zero
    assert paired_test.paired_test(tied).p_greater == pytest.approx(_brute_force_p(tied, np.zeros(7)))
    d, s = rng.normal(0.3, 1, 9), np.repeat(["speech", "digits", "piano"], 3)
    assert paired_test.paired_test(d, s).p_greater == pytest.approx(_brute_force_p(d, s))


def test_stratified_ranks_keep_a_data_set_with_large_effects_from_swamping_the_others():
    # PSNR differences of a few tenths on two data sets, and of several dB against the claim on a third
    d = np.array([0.2, 0.3, 0.4, 0.2, 0.3, 0.4, -5.0, -6.0, -7.0])
    s = np.repeat(["speech", "digits", "piano"], 3)
    assert paired_test.paired_test(d, s).p_greater < paired_test.paired_test(d).p_greater


def test_no_nonzero_difference_gives_p_one_and_bad_input_raises():
    t = paired_test.paired_test(np.zeros(5))
    assert t.p_greater == t.p_less == 1.0 and t.n_nonzero == 0
    with pytest.raises(ValueError, match="finite"):
        paired_test.paired_test([1.0, np.nan])
    with pytest.raises(ValueError, match="strata"):
        paired_test.paired_test([1.0, 2.0], ["a"])


def test_the_hodges_lehmann_interval_is_infinite_below_six_clips():
    est, low, high = paired_test.hodges_lehmann([1.0, 2.0, 3.0])
    assert est == 2.0 and low == -np.inf and high == np.inf
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert paired_test.hodges_lehmann(d)[1:] == (1.0, 6.0)  # n = 6: the extreme Walsh averages
    est, low, high = paired_test.hodges_lehmann(np.random.default_rng(0).normal(2, 1, 30))
    assert low < est < high and 1.0 < est < 3.0


def test_holm_tarone_is_holm_when_every_claim_can_reach_the_threshold():
    p = np.array([0.001, 0.01, 0.02, 0.5])
    holm = np.maximum.accumulate(np.minimum(1, p * np.array([4, 3, 2, 1])))
    assert np.allclose(paired_test.holm_tarone(p, np.full(4, 1e-6)), holm)


def test_claims_that_cannot_reach_the_threshold_do_not_count():
    # one claim on 9 pooled clips, twenty on 3 clips each (smallest p 0.125): Holm alone would ask
    # for p <= 0.05 / 21 = 0.0024; Tarone's count is 1
    p = np.array([0.5 ** 9] + [0.125] * 20)
    p_min = np.array([0.5 ** 9] + [0.125] * 20)
    adjusted = paired_test.holm_tarone(p, p_min)
    assert adjusted[0] == pytest.approx(0.5 ** 9) and (adjusted[1:] > 0.05).all()
    assert np.isnan(paired_test.holm_tarone([np.nan, 0.01], [0.01, 0.01])[0])


# ----------------------------------------------------------------------------- the rule on rows
def test_three_clips_all_on_the_papers_side_are_not_reproduced():
    a, b = clear_effect(30.0, n=3)
    e = claims.paired_effect(rows_of(a, b), CLAIM)
    assert e.n == 3 and e.verdict == claims.CONSISTENT and e.p_paper == pytest.approx(0.125)
    assert claims.verdict_text(e) == "consistent in 3 of 3 (p = 0.125)"


def test_nine_pooled_clips_all_on_the_papers_side_are_reproduced():
    pooled = Claim(**{**CLAIM.__dict__, "dataset": ("speech", "digits", "piano")})
    rows = pd.concat([rows_of(*clear_effect(0.5, n=3, seed=k), dataset=d)
                      for k, d in enumerate(("speech", "digits", "piano"))])
    e = claims.paired_effect(rows, pooled)
    assert e.n == 9 and e.p_paper == pytest.approx(0.5 ** 9)
    # decided inside a family of Table 1's size: 20 per-column claims at n = 3 and six pooled ones
    others = [claims.effect_of(clear_effect(0.5, n=3)[0] - 10, 1) for _ in range(20)]
    decided = claims.decide([e] * 3 + others, ["Table 1"] * 23)
    assert decided[0].verdict == claims.REPRODUCED and decided[0].p_adjusted <= 0.05
    assert all(d.verdict != claims.REPRODUCED for d in decided[3:])


def test_a_clear_effect_on_ten_clips_is_reproduced_and_its_reverse_contradicted():
    e = claims.paired_effect(rows_of(*clear_effect(3.0)), CLAIM)
    assert e.verdict == claims.REPRODUCED and e.n == 10 and 2.8 < e.low < e.estimate < e.high < 3.2
    assert claims.paired_effect(rows_of(*clear_effect(-3.0)), CLAIM).verdict == claims.CONTRADICTED
    lower = Claim(**{**CLAIM.__dict__, "expect": -1})
    assert claims.paired_effect(rows_of(*clear_effect(-3.0)), lower).verdict == claims.REPRODUCED


def test_zero_effect_is_not_decided():
    e = claims.paired_effect(rows_of(*clear_effect(0.0)), CLAIM)
    assert e.low < 0 < e.high and e.verdict in (claims.CONSISTENT, claims.INCONCLUSIVE)


def test_a_tie_makes_no_claim():
    a = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    e = claims.paired_effect(rows_of(a, a), CLAIM)
    assert e.p_paper == e.p_other == 1.0 and e.verdict == claims.INCONCLUSIVE and e.agree == 0
    assert claims.best_of(pd.Series({"x": 0.14, "y": 0.14, "z": 0.2}), lower_is_better=True) is None
    assert claims.best_of(pd.Series({"x": 0.14, "y": 0.15}), lower_is_better=True) == "x"


def test_a_tied_paper_column_makes_no_claim_in_the_tables_either():
    from dap.report import tables as report

    comparison = pd.DataFrame({"design": ["A", "B"], "dataset": "drums", "metric": "Env. Dist.",
                               "paper_mean": [0.14, 0.14], "mean": [0.2, 0.1]})
    rank = report.ranking_holds(comparison)
    assert rank["best_in_paper"].iloc[0] is None and pd.isna(rank["agree"].iloc[0])


def test_missing_rows_are_not_run_and_undefined_metrics_are_said_so():
    assert claims.paired_effect(rows_of([], []), CLAIM).verdict == claims.NOT_RUN
    assert claims.paired_effect(rows_of([11.0, 12, 13], []), CLAIM).verdict == claims.NOT_RUN
    assert claims.paired_effect(rows_of(*clear_effect(3.0), metric="PESQ"), CLAIM).verdict == claims.NOT_RUN
    nan = rows_of([np.nan] * 4, [np.nan] * 4)  # e.g. EPS without predicted silence
    assert claims.paired_effect(nan, CLAIM).verdict == claims.UNDEFINED


def test_pairs_are_by_clip_and_failed_or_non_finite_rows_are_left_out():
    rows = rows_of([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0])
    rows.loc[(rows.design == "B") & (rows.clip_id == "c0"), "status"] = "failed"
    rows.loc[(rows.design == "A") & (rows.clip_id == "c1"), "value"] = np.inf
    d = claims.paired_differences(rows, CLAIM)
    assert sorted(d.index.get_level_values("clip_id")) == ["c2", "c3"] and np.allclose(d, 4.0)


def test_per_clip_averages_the_sources_of_one_mixture():
    rows = pd.concat([rows_of([3.0, 4.0, 5.0], [1.0, 1.0, 1.0], dataset="piano"),
                      rows_of([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], dataset="drums")])
    c = Claim(**{**CLAIM.__dict__, "dataset": ("piano", "drums"), "per_clip": True})
    d = claims.paired_differences(rows, c)
    assert len(d) == 3 and np.allclose(d.to_numpy(), [1.0, 2.0, 3.0])


def test_a_claim_uses_one_profile_the_largest_by_default():
    rows = pd.concat([rows_of(*clear_effect(3.0), profile="quick"), rows_of([1.0], [9.0], profile="smoke")])
    assert claims.paired_effect(rows, CLAIM).profile == "quick"
    e = claims.paired_effect(rows, CLAIM, profile="smoke")
    assert (e.n, e.mean, e.profile) == (1, -8.0, "smoke")


def test_a_no_difference_claim_is_two_one_sided_tests_against_the_margin():
    same = Claim(**{**CLAIM.__dict__, "expect": 0, "margin": 1.0})
    assert claims.paired_effect(rows_of(*clear_effect(0.0)), same).verdict == claims.REPRODUCED
    assert claims.paired_effect(rows_of(*clear_effect(3.0)), same).verdict == claims.CONTRADICTED
    assert claims.paired_effect(rows_of(*clear_effect(0.0, n=3)), same).verdict != claims.REPRODUCED
    with pytest.raises(ClaimError, match="margin"):
        Claim(**{**CLAIM.__dict__, "expect": 0})


def test_a_constant_reference_and_a_log_iteration_quantity():
    chance = Claim(**{**CLAIM.__dict__, "b": 0.5, "b_label": "chance"})
    assert claims.paired_effect(rows_of([0.9, 0.95, 0.92, 0.97, 0.99, 0.93], []), chance).verdict == claims.REPRODUCED
    slower = Claim(**{**CLAIM.__dict__, "quantity": "log10 best_iteration"})
    rows = rows_of([1.0] * 6, [1.0] * 6)
    rows.loc[rows.design == "A", "best_iteration"] *= 10   # A keeps an iterate 10x later on every clip
    e = claims.paired_effect(rows, slower)
    assert np.isclose(e.mean, 1.0) and e.verdict == claims.REPRODUCED


def test_b_may_be_another_metric_or_selection_of_the_same_design():
    vs_chance = Claim(**{**CLAIM.__dict__, "b": "A", "b_metric": "chance"})
    rows = pd.concat([rows_of([0.5, 0.6, 0.7], []), rows_of([0.1, 0.1, 0.1], [], metric="chance")])
    e = claims.paired_effect(rows, vs_chance)
    assert e.n == 3 and np.isclose(e.mean, 0.5)
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


def test_best_design_verdicts_correct_over_the_table():
    rows = pd.concat([rows_of(*clear_effect(3.0)),
                      rows_of(*clear_effect(2.0, seed=2)).replace({"design": {"A": "A", "B": "C"}}).query("design == 'C'")])
    v = claims.best_design_verdicts(rows, {("digits", "PSNR"): "A"}, ["A", "B", "C"], "oracle")
    assert v.iloc[0]["verdict"] == claims.REPRODUCED and v.iloc[0]["n"] == 10
    v = claims.best_design_verdicts(rows, {("digits", "PSNR"): "B"}, ["A", "B", "C"], "oracle")
    assert v.iloc[0]["verdict"] == claims.CONTRADICTED
    assert claims.best_design_verdicts(rows, {("digits", "PSNR"): None}, ["A", "B"], "oracle").empty


# ----------------------------------------------------------------------------- registry and CLAIMS.md
def test_the_registry_is_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.paper for c in CLAIMS} == {1, 2}
    assert {"Table 1", "Table 2", "Table 3", "Table 4", "Figure 2"} <= {c.source for c in CLAIMS if c.paper == 1}
    assert all(c.link.endswith(".md") for c in CLAIMS)
    by_id = {c.id: c for c in CLAIMS}
    assert by_id["P1-T1-main-PSNR"].datasets == ("speech", "digits", "piano")
    assert by_id["P1-T1-main-PSNR"].b == ("conv", "dilated", "dilated_exp")
    assert by_id["P1-T1-main-PSNR-blind"].selection == "discrepancy"
    assert by_id["P1-T4-main-SDR"].per_clip
    assert by_id["P2-M2-align"].a == "M2 (unguided)" and "guided" in by_id["P2-M2-align-guided"].family_key
    assert {"P2-M2-BL1-PES", "P2-M2-BL2-PES"} <= set(by_id)
    # the no-difference margin is below the smallest SDR effect the paper states (BL2 - BL1 = 0.33 dB)
    assert NO_CHANGE_DB < 0.33 and all(c.margin == NO_CHANGE_DB for c in CLAIMS if c.expect == 0)


def test_every_comparison_claim_has_its_references():
    by_id = {c.id: c for c in CLAIMS}
    refs = references_of(by_id["P1-T3-main-SpecSNR"])
    assert [c.b for c in refs["trivial"]] == ["gapped-input"] and [c.b for c in refs["baseline"]] == ["stft-interp", "ar-interp"]
    assert all(c.a == "dilated_exp_dense" for c in refs["baseline"])
    align = references_of(by_id["P2-M2-align"])
    assert align["baseline"][0].b_metric == "proportional_alignment_accuracy"
    assert references_of(by_id["P1-F2-iterations"]) == {}


def _write(folder: Path, name: str, rows: pd.DataFrame):
    folder.mkdir(exist_ok=True)
    rows.to_csv(folder / name, index=False)


def test_claims_md_has_the_columns_and_a_baseline_that_wins_every_clip_says_so(tmp_path):
    """Table 3 (two data sets): three clips each, the proposed design ahead of every other design on
    every clip, the STFT interpolation ahead of it on every clip."""
    folder = tmp_path / "04_table3_inpainting"
    fits, base = [], []
    for k, d in enumerate(("speech", "digits")):
        dense, conv = clear_effect(1.0, n=3, seed=k)
        for other, shift in (("conv", 0.0), ("dilated", 0.3), ("dilated_exp", 0.6)):
            fits.append(rows_of(dense, conv + shift, metric="Spec. SNR", dataset=d, designs=("dilated_exp_dense", other)))
        base.append(rows_of(dense + 3.0, dense - 5.0, metric="Spec. SNR", dataset=d,
                            designs=("stft-interp", "gapped-input"), selections=("none", "none")))
    _write(folder, "rows.csv", pd.concat(fits).drop_duplicates(["design", "dataset", "clip_id"]).assign(task="inpaint"))
    _write(folder, "baselines.csv", pd.concat(base).assign(task="inpaint"))
    text = claims_table.write_claims(tmp_path, profile="quick").read_text()
    assert "| id | claim | compared | metric | data | n | effect [95 % interval] | p (Holm) | vs trivial | " \
           "vs best baseline | verdict |" in text
    table = pd.read_csv(tmp_path / "CLAIMS.csv").set_index("id")
    main = table.loc["P1-T3-main-SpecSNR"]
    assert main["verdict"] == claims.REPRODUCED and main["n"] == 6 and "closest: dilated_exp" in main["compared"]
    assert main["vs_trivial"] == claims.BEATS and main["vs_baseline"] == claims.LOSES
    assert main["baseline_name"] == "stft-interp"
    per_column = table.loc["P1-T3-1-speech-SpecSNR"]
    assert per_column["verdict"] == claims.CONSISTENT and per_column["n"] == 3
    assert "a baseline does better 1" in text and re.search(r"reproduced 1 \(", text)
    for c in CLAIMS:
        assert f"| {c.id} |" in text
    for _, _, claim, _ in UNTESTED:
        assert claim in text


def test_paper2_claims_read_notebook_07_and_notebook_08_rows(tmp_path):
    a, b = clear_effect(1.5, n=6)
    rows = rows_of(a, b, metric="SDR", dataset="stems", designs=("BL2", "BL1"),
                   selections=("best-validation",) * 2).assign(task="wiass")
    _write(tmp_path / "07_wiass_figure2_side_information", "rows.csv", rows)
    m2 = rows[rows.design == "BL2"].assign(design="M2 (unguided)", metric="alignment_accuracy", value=0.6)
    chance = m2.assign(metric="chance_alignment_accuracy", value=0.004)
    blind = m2.assign(metric="proportional_alignment_accuracy", value=1.0)
    _write(tmp_path / "08_wiass_figure3_attention", "rows.csv", pd.concat([m2, chance, blind]))
    table = claims_table.evaluate_claims(tmp_path).set_index("id")
    assert table.loc["P2-bl2-bl1-SDR", "n"] == 6 and table.loc["P2-bl2-bl1-SDR", "p"] == pytest.approx(1 / 64)
    align = table.loc["P2-M2-align"]
    assert align["n"] == 6 and np.isclose(align["mean"], 0.596)
    assert align["vs_trivial"] == claims.BEATS and align["vs_baseline"] == claims.LOSES  # the content-blind aligner
    assert table.loc["P2-M2-align-guided", "verdict"] == claims.NOT_RUN
    assert table.loc["P2-M1-BL1-SDR", "verdict"] == claims.NOT_RUN


def test_undecided_claims_name_the_run_that_would_decide_them(tmp_path):
    _write(tmp_path / "02_table1_gaussian_denoising", "rows.csv",
           rows_of([9.0], [8.0], designs=("dilated_exp_dense", "conv")))
    text = claims_table.write_claims(tmp_path, profile="quick").read_text()
    section = text.split("## What would decide the undecided claims")[1].split("## Claims the rows")[0]
    t1 = next(line for line in section.splitlines() if "[Table 1]" in line)
    assert "| 50 | 600 | 1,200,000 |" in t1  # 3 data sets x 50 clips x 4 designs
    hours = float(t1.rsplit("|", 2)[1].strip(" ~").replace(",", ""))
    assert 100 < hours < 1000


def test_docs_give_the_smallest_n_of_every_family():
    """docs/claims.md's table of the smallest n is the code's (it cannot go stale)."""
    assert claims_table.smallest_n_markdown() in DOCS.read_text()
    table = claims_table.smallest_n_table().set_index(["family", "data sets pooled"])
    # Table 1's PSNR is pooled over three data sets: quick's three clips each can decide it; a lone column cannot
    assert table.loc[("paper 1, Table 1", 3), "smallest n per data set"] <= 3
    assert table.loc[("paper 1, Table 1", 1), "smallest n per data set"] >= 5


def test_study_cost_counts_the_fits_of_a_profile():
    from dap.config.costs import study_cost

    quick = study_cost("02_table1_gaussian_denoising", "quick")
    assert quick["fits"] == 3 * quick["n"] * 4 and quick["fit_iterations"] == quick["fits"] * 150
    assert study_cost("05_table4_separation", "quick")["cpu_hours"] is None  # small priors: no measured cost
    assert study_cost("07_wiass_figure2_side_information", "paper") is None  # trains models, fits no prior
    stopping = study_cost("11_blind_stopping", "paper")
    assert stopping["fits"] == 10 * 5 * 2 and stopping["fit_iterations"] == stopping["fits"] * 1500
