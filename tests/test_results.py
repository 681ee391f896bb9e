import math

import numpy as np
import pandas as pd
import pytest

from dap.report import tables as report
from dap.core.device import cpu_model
from dap.core.files import atomic_write_text
from dap.core.store import ResultStore, fit_id


def _rows(fid, design="conv", value=1.0, status="ok"):
    return [{"fit_id": fid, "task": "denoise", "dataset": "digits", "clip_id": "c", "design": design,
             "selection": "oracle", "metric": "PSNR", "value": value, "status": status}]


def test_fit_id_is_stable_and_order_independent():
    assert fit_id({"a": 1, "b": 2}) == fit_id({"b": 2, "a": 1})
    assert fit_id({"a": 1}) != fit_id({"a": 2})


def test_store_resumes_and_replaces_a_fit(tmp_path):
    store = ResultStore(tmp_path)
    assert not store.has("f1")
    store.add(_rows("f1"))
    store.add(_rows("f2", value=2.0))
    again = ResultStore(tmp_path)  # a new process reads what was written
    assert again.has("f1") and again.has("f2") and len(again.rows) == 2
    again.add(_rows("f1", value=5.0))  # re-adding a fit replaces its rows, never duplicates
    rows = ResultStore(tmp_path).rows
    assert len(rows) == 2 and rows.set_index("fit_id").loc["f1", "value"] == 5.0


def test_each_fit_has_its_own_file_and_no_writer_loses_another_writers_fit(tmp_path):
    """Several writers on one store (two drivers, machines sharing a file system): a fit file that
    never reached rows.csv (its writer died between the two writes, or it came from elsewhere) is
    read and compacted by the next write; the same fit twice is one set of rows; ok beats failed."""
    import shutil

    a = ResultStore(tmp_path)
    a.add(_rows("f1"))
    assert (tmp_path / "fits" / "rows" / "f1.csv").exists()
    pd.DataFrame(_rows("f9", value=9.0)).to_csv(tmp_path / "fits" / "rows" / "f9.csv", index=False)  # elsewhere
    b = ResultStore(tmp_path)
    assert b.has("f9") and not (pd.read_csv(tmp_path / "rows.csv")["fit_id"] == "f9").any()
    assert a.has("f9")  # looked for on disk just before a fit would start
    b.add(_rows("f2", value=2.0))
    compacted = pd.read_csv(tmp_path / "rows.csv")
    assert sorted(compacted["fit_id"]) == ["f1", "f2", "f9"]
    b.add(_rows("f2", value=3.0))  # the same fit again: one set of rows, the newer
    again = ResultStore(tmp_path).rows
    assert len(again) == 3 and again.set_index("fit_id").loc["f2", "value"] == 3.0
    failed = [{**r, "status": "failed", "value": float("nan")} for r in _rows("f1")]
    b.add(failed)  # a failed duplicate never replaces a success, in rows.csv or in the fit's file
    assert ResultStore(tmp_path).rows.set_index("fit_id").loc["f1", "status"] == "ok"
    assert (pd.read_csv(tmp_path / "fits" / "rows" / "f1.csv")["status"] == "ok").all()
    (tmp_path / "rows.csv").unlink()  # rows.csv lost: the fit files still hold every fit
    assert sorted(ResultStore(tmp_path).rows["fit_id"]) == ["f1", "f2", "f9"]
    shutil.rmtree(tmp_path / "fits")
    assert len(ResultStore(tmp_path).rows) == 0


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hello")
    atomic_write_text(tmp_path / "x.txt", "world")
    assert (tmp_path / "x.txt").read_text() == "world"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_aggregate_counts_failures_and_nans_separately():
    rows = pd.DataFrame(_rows("a", value=1.0) + _rows("b", value=3.0) + _rows("c", value=np.nan)
                        + _rows("d", value=np.nan, status="failed"))
    agg = report.aggregate(rows).iloc[0]
    assert agg["n"] == 2 and agg["mean"] == 2.0 and agg["median"] == 2.0
    assert agg["std"] == pytest.approx(math.sqrt(2))
    assert agg["n_failed"] == 1 and agg["n_nan"] == 1


def test_compare_with_paper_and_ranking():
    rows = pd.DataFrame(
        _rows("a", design="conv", value=5.0) + _rows("b", design="dilated_exp_dense", value=9.0))
    rows["dataset"] = "piano"
    cmp = report.compare_with_paper(rows, "table1", "oracle")
    piano = cmp[(cmp.dataset == "piano") & (cmp.metric == "PSNR")].set_index("design")
    assert piano.loc["conv", "diff"] == pytest.approx(5.0 - 9.17)
    assert math.isnan(piano.loc["dilated", "mean"])  # not computed: shown as missing, not zero
    rank = report.ranking_holds(cmp).set_index(["dataset", "metric"])
    assert rank.loc[("piano", "PSNR"), "agree"]
    md = report.markdown_table(cmp, "caption")
    assert "Dilated Conv. (exp) + Dense" in md and "paper 12.50 ± 1.11" in md


def test_ours_only_table_lists_designs_in_the_papers_order():
    rows = pd.DataFrame([r | {"metric": "SNR"} for i, d in enumerate(("dilated", "conv", "dilated_exp_dense"))
                         for r in _rows(f"f{i}", design=d, value=float(i))])
    md = report.ours_only_table(rows, ("SNR",), "oracle")
    names = [line.split("|")[1].strip() for line in md.splitlines()[2:]]
    assert names == ["Convolution", "Dilated Conv.", "Dilated Conv. (exp) + Dense"]


def test_cpu_model_names_the_instructions_that_decide_precision_and_speed():
    xeon = "model name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    epyc = "model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    slow = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n"
    assert cpu_model(xeon) == "Intel(R) Xeon(R) Platinum 8480C (avx2, avx512f, avx512_bf16, amx_bf16)"
    assert cpu_model(epyc) == "AMD EPYC (avx2, avx512f, avx512_bf16, no AMX)"
    assert cpu_model(slow) == "AMD EPYC 7B13 (avx2, no AMX)"
    assert cpu_model("flags\t: fpu sse2\n").endswith("(no AMX)")
