"""A run extends a reference folder (dap.report.reference, ``./run_all.sh --reference DIR``): its rows of
the current code go in compressed, older rows stay out, published files and the run log follow, the
next run starts from them, and a run of another precision class or a taken file name is refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dap.core.fingerprint import PAPER1, PAPER2, code_fingerprint
from dap.report.check import check_reference, regenerate
from dap.report.reference import ReferenceError, add_to_reference, seed_run

TABLE1 = "02_table1_gaussian_denoising"
FIGURE2 = "07_wiass_figure2_side_information"


def _rows(code: str, precision: str, n: int = 6, stale: int = 0) -> pd.DataFrame:
    """Rows of two designs on n clips (the first ahead), and ``stale`` more of another code."""
    rng = np.random.default_rng(1)
    out = []
    for k in range(n + stale):
        for design, shift in (("dilated_exp_dense", 1.0), ("conv", 0.0)):
            out.append({"fit_id": f"{design}-{k}", "task": "denoise-gaussian", "dataset": "digits",
                        "source": "embedded", "clip_id": f"c{k}", "design": design, "profile": "quick",
                        "selection": "oracle", "metric": "PSNR", "value": 10 + shift + rng.normal(0, 0.1),
                        "best_iteration": 10, "status": "ok", "code": code if k < n else "paper1:000000000000",
                        "precision_class": precision})
    return pd.DataFrame(out)


def _run(results: Path, notebook: str, rows: pd.DataFrame, table: str = "table1.md") -> None:
    folder = results / notebook
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(folder / "rows.csv", index=False)
    (folder / table).write_text("| design | PSNR |\n")
    (folder / f"{notebook}.ipynb").write_text("{}")  # not published


RECORD = {"notebook": TABLE1, "profile": "quick", "status": "ok", "seconds": 1.0, "commit": "abc"}


def test_a_run_goes_in_with_its_current_rows_only_and_the_next_run_starts_from_them(tmp_path):
    results, ref = tmp_path / "run", tmp_path / "ref"
    ref.mkdir()
    _run(results, TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu", stale=2))
    add_to_reference(results, ref, TABLE1, RECORD)
    kept = pd.read_csv(ref / "rows" / TABLE1 / "rows.csv.gz")
    assert len(kept) == 12 and set(kept["code"]) == {code_fingerprint(PAPER1)}
    assert (ref / "table1.md").exists() and not (ref / f"{TABLE1}.ipynb").exists()
    assert pd.read_csv(ref / "published.csv").to_dict("records") == [
        {"file": "table1.md", "notebook": TABLE1, "commit": "abc"}]
    assert list(pd.read_csv(ref / "run_log.csv")["notebook"]) == [TABLE1]
    regenerate(ref)
    assert "all current" in check_reference(ref)
    fresh = tmp_path / "fresh"
    assert seed_run(ref, fresh, TABLE1) == 12
    assert pd.read_csv(fresh / TABLE1 / "rows.csv").equals(kept)
    assert seed_run(ref, fresh, TABLE1) == 0  # a run's own rows are never overwritten


def test_the_same_rows_pack_to_the_same_bytes(tmp_path):
    for name in ("a", "b"):
        _run(tmp_path / f"run{name}", TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu"))
        (tmp_path / f"ref{name}").mkdir()
        add_to_reference(tmp_path / f"run{name}", tmp_path / f"ref{name}", TABLE1, RECORD)
    packed = [(tmp_path / f"ref{n}" / "rows" / TABLE1 / "rows.csv.gz").read_bytes() for n in "ab"]
    assert packed[0] == packed[1] and gzip.decompress(packed[0])


def test_another_precision_class_is_refused_and_paper_2_keeps_its_own(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    _run(tmp_path / "run", TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu"))
    add_to_reference(tmp_path / "run", ref, TABLE1, RECORD)
    _run(tmp_path / "other", TABLE1, _rows(code_fingerprint(PAPER1), "fp32/cpu"))
    with pytest.raises(ReferenceError, match="precision class"):
        add_to_reference(tmp_path / "other", ref, TABLE1, RECORD)
    paper2 = _rows(code_fingerprint(PAPER2), "fp32/cpu")  # paper 2 trains in fp32 anywhere: its own family
    _run(tmp_path / "other", FIGURE2, paper2, table="figure2_medians.md")
    add_to_reference(tmp_path / "other", ref, FIGURE2, {**RECORD, "notebook": FIGURE2})
    assert (ref / "wiass_figure2_medians.md").exists()


def test_a_file_name_published_by_another_notebook_is_refused(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    _run(tmp_path / "run", TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu"))
    add_to_reference(tmp_path / "run", ref, TABLE1, RECORD)
    other = "03_table2_environmental_denoising"
    _run(tmp_path / "run", other, _rows(code_fingerprint(PAPER1), "bf16/cpu"))
    with pytest.raises(ReferenceError, match="already published by"):
        add_to_reference(tmp_path / "run", ref, other, {**RECORD, "notebook": other})


def test_the_summary_is_derived_from_the_run_log_and_says_what_is_missing(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    _run(tmp_path / "run", TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu"))
    add_to_reference(tmp_path / "run", ref, TABLE1, {**RECORD, "seconds": 7200.0, "cpu": "EPYC (avx2)",
                                                     "predicted_seconds": 4800.0})
    regenerate(ref)
    summary = (ref / "SUMMARY.md").read_text()
    assert "1 of 12" in summary and "compute 2.00 h (the runs' wall time" in summary and "on EPYC (avx2)" in summary
    spent = summary.split("Where the time went")[1].split(f"| {TABLE1}")[1].split("\n")[0]
    assert [c.strip() for c in spent.split("|")[1:4]] == ["7200", "4800", "1.5"]  # wall, the plan's, their ratio
    assert "00_quickstart" in summary.split("Not yet in this reference:")[1]
    assert "reproduced" in summary and f"- {TABLE1}: [table1.md](table1.md)" in summary
    (ref / "SUMMARY.md").write_text(summary.replace("2.00 h", "1.00 h"))
    with pytest.raises(Exception, match="SUMMARY.md line"):
        check_reference(ref)


def test_figure_1_puts_its_fits_where_table_1_keeps_them(tmp_path):
    ref, figure1 = tmp_path / "ref", "01_figure1_denoising_example"
    ref.mkdir()
    _run(tmp_path / "run", TABLE1, _rows(code_fingerprint(PAPER1), "bf16/cpu"))  # Figure 1's fits land in 02's store
    (tmp_path / "run" / figure1).mkdir()
    (tmp_path / "run" / figure1 / "figure1_spectrograms.png").write_bytes(b"png")
    add_to_reference(tmp_path / "run", ref, figure1, {**RECORD, "notebook": figure1})
    assert (ref / "rows" / TABLE1 / "rows.csv.gz").exists() and not (ref / "rows" / figure1).exists()
    assert (ref / "figure1_spectrograms.png").exists()
    assert seed_run(ref, tmp_path / "fresh", figure1) == 12 and (tmp_path / "fresh" / TABLE1 / "rows.csv").exists()
