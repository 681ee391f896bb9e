"""``python -m dap compare`` (dap.claims.compare): a re-run's rows against a reference's, per claim and
per table cell, on small constructed result folders and on the committed reference."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dap import cli
from dap.claims import compare as cmp
from dap.claims import tolerances as tol
from dap.claims.rule import REPRODUCED
from tests.test_claims import clear_effect, rows_of

REPO = Path(__file__).resolve().parent.parent
TABLE1 = "02_table1_gaussian_denoising"
#: A notebook no claim reads: its cells can move without moving a verdict.
LOOSE = "99_synthetic"


def table1_rows() -> pd.DataFrame:
    """Table 1's PSNR (oracle) on three data sets of two clips: the proposed design ahead of every
    other design on every clip, so the pooled main claim is reproduced (n = 6, p = 2^-6; no other
    claim of its family can reach 0.05). One clip moved behind makes it p = 10/64 (ranks are per data set)."""
    fits = []
    for k, d in enumerate(("speech", "digits", "piano")):
        dense, conv = clear_effect(1.0, n=2, seed=k)
        for other, shift in (("conv", 0.0), ("dilated", 0.3), ("dilated_exp", 0.6)):
            fits.append(rows_of(dense, conv + shift, dataset=d, designs=("dilated_exp_dense", other)))
    rows = pd.concat(fits).drop_duplicates(["design", "dataset", "clip_id"]).assign(task="denoise-gaussian")
    return rows.assign(fit_id=rows["design"] + "-" + rows["dataset"] + "-" + rows["clip_id"]).reset_index(drop=True)


def loose_rows() -> pd.DataFrame:
    return rows_of([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], metric="PSNR", dataset="speech")


def write_run(folder: Path, rows: dict[str, pd.DataFrame]) -> Path:
    """A run's layout: ``<notebook>/rows.csv``."""
    for notebook, r in rows.items():
        (folder / notebook).mkdir(parents=True, exist_ok=True)
        r.to_csv(folder / notebook / "rows.csv", index=False)
    return folder


def write_reference(folder: Path, rows: dict[str, pd.DataFrame]) -> Path:
    """A reference's layout: ``rows/<notebook>/rows.csv.gz``."""
    for notebook, r in rows.items():
        (folder / "rows" / notebook).mkdir(parents=True, exist_ok=True)
        r.to_csv(folder / "rows" / notebook / "rows.csv.gz", index=False, compression="gzip")
    return folder


def run_cli(*args, capsys) -> tuple[int, str, str]:
    code = cli.main(["compare", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def reference(tmp_path) -> Path:
    return write_run(tmp_path / "reference", {TABLE1: table1_rows(), LOOSE: loose_rows()})


def test_a_folder_against_itself_is_identical_everywhere(reference, capsys):
    result = cmp.compare(reference, reference)
    assert set(result.claims["status"]) == {cmp.IDENTICAL} and set(result.cells["status"]) == {cmp.IDENTICAL}
    assert (result.cells["difference"] == 0).all() and (result.claims["effect_difference"].fillna(0) == 0).all()
    main = result.claims.set_index("id").loc["P1-T1-main-PSNR"]
    assert main["verdict_run"] == main["verdict_reference"] == REPRODUCED
    # one cell per (notebook, dataset, design, selection, metric): 3 data sets x 4 designs, and the loose two
    assert len(result.cells) == 14 and set(result.cells["n_run"]) == {2, 4}
    code, out, _ = run_cli(reference, reference, "--strict", capsys=capsys)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("compare: ") and " 0 verdicts flipped" in last and "14 cells, 14 within tolerance" in last
    assert "0 outside" in last and "only in" not in last


def test_one_clip_moved_flips_a_verdict_and_the_exit_status(reference, tmp_path, capsys):
    rows = table1_rows()
    one = (rows["design"] == "dilated_exp_dense") & (rows["dataset"] == "speech") & (rows["clip_id"] == "c0")
    rows.loc[one, "value"] -= 5.0  # now behind every other design on this clip
    run = write_run(tmp_path / "run", {TABLE1: rows, LOOSE: loose_rows()})
    result = cmp.compare(run, reference)
    main = result.claims.set_index("id").loc["P1-T1-main-PSNR"]
    assert main["status"] == cmp.FLIPPED and main["verdict_reference"] == REPRODUCED != main["verdict_run"]
    assert main["effect_difference"] < 0
    moved = result.cells[result.cells["status"] != cmp.IDENTICAL]
    assert len(moved) == 1 and moved.iloc[0]["design"] == "dilated_exp_dense" and moved.iloc[0]["dataset"] == "speech"
    assert moved.iloc[0]["difference"] == pytest.approx(-5.0 / 2)
    code, out, _ = run_cli(run, reference, capsys=capsys)
    assert code == 1
    assert "| P1-T1-main-PSNR |" in out and "| flipped |" in out
    assert "largest: 02_table1_gaussian_denoising speech/dilated_exp_dense/oracle/PSNR -2.5" in out


@pytest.mark.parametrize("factor, status", [(0.5, cmp.WITHIN), (2.0, cmp.OUTSIDE)])
def test_a_cell_within_or_outside_its_tolerance(reference, tmp_path, capsys, factor, status):
    """One clip of four moved by 4 x factor x the tolerance moves the cell's mean by factor x it."""
    rows = loose_rows()
    rows.loc[0, "value"] += 4 * factor * tol.tolerance("PSNR")
    run = write_run(tmp_path / "run", {TABLE1: table1_rows(), LOOSE: rows})
    result = cmp.compare(run, reference)
    moved = result.cells[result.cells["status"] != cmp.IDENTICAL]
    assert len(moved) == 1 and moved.iloc[0]["status"] == status
    assert moved.iloc[0]["difference"] == pytest.approx(factor * tol.tolerance("PSNR"))
    assert result.exit_status(strict=False) == 0  # no verdict moved
    code, out, _ = run_cli(run, reference, "--strict", capsys=capsys)
    assert code == (1 if status == cmp.OUTSIDE else 0)
    assert ("1 outside (largest: 99_synthetic speech/A/oracle/PSNR" in out) == (status == cmp.OUTSIDE)


def test_an_unknown_metric_gets_the_default_tolerance_and_is_not_called_measured():
    assert tol.tolerance("no such metric") == tol.DEFAULT_TOLERANCE and not tol.is_measured("no such metric")
    assert tol.tolerance("SDR") == tol.GUESSED_TOLERANCES["SDR"] and not tol.is_measured("SDR")
    assert all(v > 0 for v in tol.TOLERANCES.values())


def test_the_tolerances_are_what_the_kept_seed_variation_rows_give():
    """TOLERANCES is derived from the committed rows of benchmarks/seed_variation.py, not typed: the
    constants must equal what the rows give (re-run the benchmark with --out to change them)."""
    assert tol.measured_tolerances() == tol.TOLERANCES
    assert {"PSNR", "PESQ", "Spec. SNR"} <= set(tol.TOLERANCES)


def test_spread_pools_the_variance_across_seeds_per_setting():
    """Two settings, values differing by 2 and by 0 across two seeds: variances 2 and 0, pooled SD 1,
    tolerance SDS x 1; a setting fitted under one seed only is left out."""
    rows = pd.DataFrame({"dataset": "d", "clip_id": ["a", "a", "b", "b", "c"], "design": "x", "selection": "last",
                         "metric": "PSNR", "seed": [0, 1, 0, 1, 0], "value": [1.0, 3.0, 5.0, 5.0, 9.0]})
    table = tol.spread(rows, ["metric"]).iloc[0]
    assert table["settings"] == 2 and table["pooled_sd"] == pytest.approx(1.0)
    assert table["tolerance"] == pytest.approx(tol.SDS) and table["largest_sd"] == pytest.approx(2 ** 0.5)


def test_the_reference_layout_compares_with_a_run_layout(tmp_path):
    rows = {TABLE1: table1_rows(), LOOSE: loose_rows()}
    run, ref = write_run(tmp_path / "run", rows), write_reference(tmp_path / "ref", rows)
    assert not (ref / TABLE1).exists() and (ref / "rows" / TABLE1 / "rows.csv.gz").exists()
    result = cmp.compare(run, ref)
    assert set(result.claims["status"]) == {cmp.IDENTICAL} and set(result.cells["status"]) == {cmp.IDENTICAL}
    assert len(result.cells) == 14 and (result.claims["status"] == cmp.IDENTICAL).sum() >= 1


def test_a_benchmark_folder_with_its_own_rows_is_not_a_notebook(reference):
    """Benchmark outputs kept beside a reference (e.g. ``oracle_peak/rows.csv``) have other columns."""
    (reference / "oracle_peak").mkdir()
    (reference / "oracle_peak" / "rows.csv").write_text("iteration,snr\n1,2.0\n")
    assert cmp.notebooks_with_rows(reference) == [TABLE1, LOOSE]
    assert set(cmp.compare(reference, reference).cells["notebook"]) == {TABLE1, LOOSE}


def test_what_one_side_lacks_is_listed_not_an_error(reference, tmp_path, capsys):
    run = write_run(tmp_path / "run", {LOOSE: loose_rows(), "98_extra": loose_rows()})
    result = cmp.compare(run, reference)
    cells, claims = result.cells.set_index("notebook")["status"], result.claims.set_index("id")["status"]
    assert set(cells[TABLE1]) == {cmp.ONLY_REFERENCE} and set(cells["98_extra"]) == {cmp.ONLY_RUN}
    assert set(cells[LOOSE]) == {cmp.IDENTICAL}
    assert claims["P1-T1-main-PSNR"] == cmp.ONLY_REFERENCE
    code, out, _ = run_cli(run, reference, capsys=capsys)
    assert code == 0 and out.strip().splitlines()[-1].endswith("only in run: 0 claims, 2 cells; "
                                                              f"only in reference: {(claims == cmp.ONLY_REFERENCE).sum()} "
                                                              "claims, 12 cells")


def test_rows_that_failed_or_are_not_finite_are_left_out_of_a_cell(tmp_path):
    rows = loose_rows()
    rows.loc[0, "status"] = "failed"
    rows.loc[1, "value"] = float("nan")
    cells = cmp.table_cells(write_run(tmp_path, {LOOSE: rows})).set_index("design")
    assert cells.loc["A", "n"] == 2 and cells.loc["A", "mean"] == 3.5 and cells.loc["B", "mean"] == 6.5


def test_a_missing_or_empty_folder_is_one_line_naming_it(reference, tmp_path, capsys):
    code, _, err = run_cli(tmp_path / "absent", reference, capsys=capsys)
    assert code == cli.EXIT_ERROR and f"run folder {tmp_path / 'absent'} does not exist" in err
    (tmp_path / "empty" / "02_table1_gaussian_denoising").mkdir(parents=True)
    code, _, err = run_cli(reference, tmp_path / "empty", capsys=capsys)
    assert code == cli.EXIT_ERROR and f"reference folder {tmp_path / 'empty'} holds no result rows" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_out_writes_the_table_and_the_summary_stays_last(reference, tmp_path, capsys):
    code, out, _ = run_cli(reference, reference, "--out", tmp_path / "cmp.md", capsys=capsys)
    text = (tmp_path / "cmp.md").read_text()
    assert code == 0 and "## Claims" in text and "## Table cells" in text
    assert out.strip().splitlines()[-1] == text.strip().splitlines()[-1]


def test_the_committed_reference_against_itself_has_no_difference(capsys):
    result = cmp.compare(cmp.REFERENCE_DIR, cmp.REFERENCE_DIR)
    assert len(result.cells) > 100 and len(result.claims) > 10
    assert set(result.cells["status"]) == {cmp.IDENTICAL} and set(result.claims["status"]) == {cmp.IDENTICAL}
    code, out, _ = run_cli(REPO / "results" / "reference", "--strict", capsys=capsys)  # the default reference
    assert code == 0 and f"{len(result.cells)} cells, {len(result.cells)} within tolerance" in out


def test_the_seed_variation_benchmark_runs_at_a_toy_size(tmp_path):
    """Two seeds of a tiny fit: it prints a per-metric spread and the tolerance it implies, and keeps
    rows from which dap.claims.tolerances derives the same metrics (no value is asserted: the spread of
    two 2-iteration fits means nothing)."""
    env = dict(os.environ, DAP_PROGRESS="off", PYTHONPATH=str(REPO))
    cmd = [sys.executable, str(REPO / "benchmarks" / "seed_variation.py"), "--designs", "conv", "--iterations", "2",
           "--seeds", "2", "--clips", "1", "--datasets", "piano", "--out", str(tmp_path)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for metric in ("PSNR", "SNR"):
        assert f"| {metric} |" in out.stdout
    assert "TOLERANCES = {" in out.stdout
    assert set(tol.measured_tolerances(tmp_path)) == {"PSNR", "SNR"}
    assert (tmp_path / "seed_variation_02.md").read_text() in out.stdout
