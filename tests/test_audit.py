"""``--audit``: a sample of the reference's fits, stratified over notebooks and sized to the time given,
re-fitted through the notebooks' own fit plans and matched to the committed rows (dap.report.audit)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from dap.report.audit import AuditError, audit_sample, audit_summary, audit_table, reference_fits, run_audit
from dap.report.reference import add_to_reference
from dap.studies.plans import run_plans

TABLE1 = "02_table1_gaussian_denoising"


def _fits(seconds: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"notebook": nb, "profile": "quick", "dataset": "digits", "clip_id": f"c{k}",
                          "design": "conv", "fit_id": f"{nb}-{k}", "seconds": s}
                         for nb, values in seconds.items() for k, s in enumerate(values)])


def test_the_sample_is_stratified_and_fits_the_budget():
    fits = _fits({"02": [60.0] * 10, "04": [60.0] * 10, "05": [600.0] * 3})
    sample = audit_sample(fits, minutes=5, seed=1)
    assert sample["predicted_s"].sum() <= 300
    assert set(sample["notebook"]) == {"02", "04"} and len(sample) == 5  # 05's fits do not fit
    assert sample["notebook"].value_counts().max() - sample["notebook"].value_counts().min() <= 1
    assert audit_sample(fits, minutes=5, seed=1).equals(sample)
    assert len(audit_sample(fits, minutes=5, speed_ratio=2.0, seed=1)) == 2  # a machine twice as slow


def test_too_little_time_or_no_fits_is_refused():
    with pytest.raises(AuditError, match="not enough for one fit"):
        audit_sample(_fits({"02": [600.0]}), minutes=1)
    with pytest.raises(AuditError, match="no fit rows"):
        audit_sample(pd.DataFrame(), minutes=10)


@pytest.fixture(scope="module")
def smoke_reference(tmp_path_factory):
    """Notebook 02's fits in smoke, run and put into a reference folder."""
    run, ref = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("ref")
    old = os.environ.get("DAP_RESULTS")
    os.environ["DAP_RESULTS"] = str(run)
    try:
        run_plans([TABLE1], "smoke", {"workers": 1}, progress=lambda _: None)
    finally:
        os.environ.pop("DAP_RESULTS") if old is None else os.environ.__setitem__("DAP_RESULTS", old)
    add_to_reference(run, ref, TABLE1, {"notebook": TABLE1, "status": "ok", "commit": "test"})
    return ref


def test_a_refit_of_the_same_code_and_precision_is_identical(smoke_reference, tmp_path):
    fits = reference_fits(smoke_reference)
    sample = audit_sample(fits, minutes=60, seed=0).head(2)
    run_audit(sample, tmp_path / "audit", progress=lambda _: None)
    table = audit_table(sample, smoke_reference, tmp_path / "audit")
    assert len(table) == 2 and (table["values"] > 0).all()
    assert table["identical"].all() and table["within_tolerance"].all()
    assert audit_summary(table, 1.0).startswith("audit: 2 fit(s) re-fitted")
    refitted = pd.read_csv(tmp_path / "audit" / TABLE1 / "rows.csv")
    assert set(zip(refitted["clip_id"], refitted["design"])) == set(zip(sample["clip_id"], sample["design"]))


def test_a_perturbed_reference_value_is_found(smoke_reference, tmp_path):
    import gzip
    import shutil

    ref = shutil.copytree(smoke_reference, tmp_path / "ref")
    path = ref / "rows" / TABLE1 / "rows.csv.gz"
    rows = pd.read_csv(path)
    sample = audit_sample(reference_fits(ref), minutes=60, seed=0).head(1)
    hit = (rows["clip_id"] == sample.loc[0, "clip_id"]) & (rows["design"] == sample.loc[0, "design"])
    rows.loc[hit & (rows["metric"] == rows.loc[hit, "metric"].iloc[0]), "value"] += 5.0
    path.write_bytes(gzip.compress(rows.to_csv(index=False).encode()))
    run_audit(sample, tmp_path / "audit", progress=lambda _: None)
    table = audit_table(sample, ref, tmp_path / "audit")
    assert not table.loc[0, "identical"] and not table.loc[0, "within_tolerance"]
    assert table.loc[0, "largest_difference"] == pytest.approx(5.0)


def test_the_classical_baselines_beside_the_fits_are_not_sampled_as_fits(tmp_path):
    """The baselines' rows (selection "none", milliseconds each) would fill any budget with non-fits."""
    folder = tmp_path / "rows" / TABLE1
    folder.mkdir(parents=True)
    base = {"profile": "quick", "dataset": "digits", "clip_id": "c0", "status": "ok", "metric": "PSNR",
            "value": 1.0, "code": "paper1:x", "precision_class": "bf16/cpu"}
    pd.DataFrame([{**base, "fit_id": "f1", "design": "conv", "selection": "oracle", "seconds": 90.0}]).to_csv(
        folder / "rows.csv.gz", index=False)
    pd.DataFrame([{**base, "fit_id": "b1", "design": "wiener-oracle", "selection": "none", "seconds": 0.01}]).to_csv(
        folder / "baselines.csv.gz", index=False)
    fits = reference_fits(tmp_path)
    assert list(fits["fit_id"]) == ["f1"] and list(fits["design"]) == ["conv"]
