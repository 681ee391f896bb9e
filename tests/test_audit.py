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


def test_a_separation_fit_is_named_by_its_mixture_as_its_grid_names_it(tmp_path):
    """Claims read separation rows split per source (data set "piano" / "drums"); the grid names the
    fit by its mixture ("piano+drums"), and a sample named by a source would select nothing."""
    folder = tmp_path / "rows" / "05_table4_separation"
    folder.mkdir(parents=True)
    base = {"profile": "quick", "dataset": "piano+drums", "clip_id": "p1+d1", "status": "ok", "design": "conv",
            "fit_id": "s1", "selection": "oracle", "seconds": 200.0, "code": "paper1:x", "precision_class": "bf16/cpu"}
    pd.DataFrame([{**base, "metric": f"{src}|SDR", "value": v} for src, v in (("drums", 1.0), ("piano", 2.0))]).to_csv(
        folder / "rows.csv.gz", index=False)
    fits = reference_fits(tmp_path)
    assert list(fits["dataset"]) == ["piano+drums"] and list(fits["clip_id"]) == ["p1+d1"]
    same = audit_table(fits.assign(notebook="05_table4_separation"), tmp_path, tmp_path)
    assert same.loc[0, "values"] == 2 and bool(same.loc[0, "identical"])


def test_fits_sharing_a_key_are_costed_together_and_matched_apart(tmp_path):
    """The stopping study fits one clip at several SNRs: sampling its key runs all of them, so the key
    costs their sum, and each value is matched to the fit of its own SNR, not across SNRs."""
    folder = tmp_path / "rows" / "11_blind_stopping"
    folder.mkdir(parents=True)
    base = {"profile": "quick", "dataset": "speech", "clip_id": "c0", "status": "ok", "design": "conv",
            "selection": "discrepancy", "metric": "SNR", "seconds": 100.0, "code": "paper1:x",
            "precision_class": "bf16/cpu", "task": "stopping-white"}
    rows = pd.DataFrame([{**base, "fit_id": f"f{snr}", "mix_snr_db": snr, "value": 10.0 + snr} for snr in (0.0, 5.0)])
    rows.to_csv(folder / "rows.csv.gz", index=False)
    fits = reference_fits(tmp_path)
    assert len(fits) == 1 and fits.loc[0, "fits"] == 2 and fits.loc[0, "seconds"] == 200.0
    same = audit_table(fits, tmp_path, tmp_path)
    assert same.loc[0, "values"] == 2 and bool(same.loc[0, "identical"])


def test_an_audited_fit_that_made_no_rows_is_reported_not_a_crash(tmp_path):
    folder = tmp_path / "ref" / "rows" / TABLE1
    folder.mkdir(parents=True)
    pd.DataFrame([{"fit_id": "f1", "profile": "quick", "dataset": "digits", "clip_id": "c0", "design": "conv",
                   "selection": "oracle", "metric": "PSNR", "value": 1.0, "status": "ok", "seconds": 9.0,
                   "code": "paper1:x"}]).to_csv(folder / "rows.csv.gz", index=False)
    fits = reference_fits(tmp_path / "ref")
    table = audit_table(fits, tmp_path / "ref", tmp_path / "empty")
    assert table.loc[0, "values"] == 0 and not table.loc[0, "within_tolerance"]
