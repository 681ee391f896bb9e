"""Fit ids and rows carry the code's fingerprint and the precision class (dap.core.fingerprint,
dap.core.device.precision_class), and ``python -m dap report [--check] DIR`` (dap.report.check) holds a
reference folder to them: a synthetic reference of current rows passes, a changed derived line, a
row of other code and a row without the columns each fail, naming where."""

from __future__ import annotations

import ast
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dap import cli
from dap.core import fingerprint
from dap.core.device import NUMPY_PRECISION_CLASS
from dap.core.errors import DapError
from dap.core.fingerprint import NOT_RESULTS, PAPER1, PAPER2, code_fingerprint
from dap.core.store import ROW_COLUMNS, ResultStore, fit_id
from dap.data.clip import Clip
from dap.engine.grid import Grid
from dap.report import check
from dap.report.check import StaleReference, check_reference, first_difference, regenerate

TABLE1 = "02_table1_gaussian_denoising"
FIGURE2 = "07_wiass_figure2_side_information"


def _rows(task: str, designs, dataset: str, metric: str, selection: str, code: str, n: int = 6) -> pd.DataFrame:
    """Tidy rows of two designs on the same n clips, the first ahead by about 1, stamped with ``code``."""
    rng = np.random.default_rng(0)
    base = 10 + rng.normal(0, 2, n)
    out = []
    for design, values in zip(designs, (base + 1 + rng.normal(0, 0.1, n), base)):
        for k, v in enumerate(values):
            out.append({"fit_id": f"{design}-{k}", "task": task, "dataset": dataset, "source": "embedded",
                        "clip_id": f"c{k}", "design": design, "profile": "quick", "selection": selection,
                        "metric": metric, "value": v, "status": "ok", "best_iteration": 10,
                        "code": code, "precision_class": "fp32/cpu"})
    return pd.DataFrame(out)


def _write_rows(reference: Path, notebook: str, rows: pd.DataFrame) -> Path:
    path = reference / "rows" / notebook / "rows.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)  # gzip: from the suffix
    return path


def _read_rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def current_reference(tmp_path_factory) -> Path:
    """A reference folder of paper-1 and paper-2 rows of the current code, its CLAIMS derived by
    ``python -m dap report DIR`` (built once: deriving the claims takes seconds)."""
    ref = tmp_path_factory.mktemp("reference")
    _write_rows(ref, TABLE1, _rows("denoise-gaussian", ("dilated_exp_dense", "conv"), "digits", "PSNR", "oracle",
                                   code_fingerprint(PAPER1)))
    _write_rows(ref, FIGURE2, _rows("wiass", ("BL2", "BL1"), "stems", "SDR", "best-validation",
                                    code_fingerprint(PAPER2)))
    assert cli.main(["report", str(ref)]) == 0
    return ref


@pytest.fixture
def reference(current_reference, tmp_path) -> Path:
    """A copy of :func:`current_reference` to spoil."""
    return Path(shutil.copytree(current_reference, tmp_path / "ref"))


def _fails(folder: Path, capsys) -> str:
    """The one line ``report --check`` prints on stderr, asserting it exits 1."""
    assert cli.main(["report", "--check", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


# ----------------------------------------------------------------------------- report --check
def test_a_reference_of_current_rows_and_derived_files_passes(current_reference, capsys):
    assert all((current_reference / f).is_file() for f in ("CLAIMS.md", "CLAIMS.csv", "SUMMARY.md"))
    capsys.readouterr()
    assert cli.main(["report", "--check", str(current_reference)]) == 0
    assert capsys.readouterr().out.strip().endswith("report --check: 2 row files, 3 generated files, 0 published tables re-derived, "
                                                       "all current")
    claims = pd.read_csv(current_reference / "CLAIMS.csv").set_index("id")
    assert claims.loc["P2-bl2-bl1-SDR", "n"] == 6  # the claims did read the reference's compressed rows


def test_a_changed_line_of_a_derived_file_fails_naming_the_file_and_line(reference, capsys):
    lines = (reference / "CLAIMS.md").read_text().splitlines(keepends=True)
    lines[4] = "> a hand-written note\n" + lines[4]  # the committed reference's kind of edit
    (reference / "CLAIMS.md").write_text("".join(lines))
    err = _fails(reference, capsys)
    assert "CLAIMS.md line 5:" in err and "a hand-written note" in err


def test_a_row_of_other_code_fails_naming_the_file_row_and_fit(reference, capsys):
    path = reference / "rows" / TABLE1 / "rows.csv.gz"
    rows = _read_rows(path)
    rows.loc[2, "code"] = "paper1:000000000000"
    rows.to_csv(path, index=False)
    err = _fails(reference, capsys)
    assert f"rows/{TABLE1}/rows.csv.gz row 3 (fit {rows.loc[2, 'fit_id']})" in err
    assert "paper1:000000000000" in err and code_fingerprint(PAPER1) in err
    rows.loc[2, "code"] = "paper9:000000000000"
    rows.to_csv(path, index=False)
    assert "names no known family" in _fails(reference, capsys)


def test_rows_without_the_columns_or_values_fail(reference, capsys):
    path = reference / "rows" / FIGURE2 / "rows.csv.gz"
    rows = _read_rows(path)
    rows.drop(columns=["code", "precision_class"]).to_csv(path, index=False)
    err = _fails(reference, capsys)
    assert f"rows/{FIGURE2}/rows.csv.gz row 1" in err and "no code / precision_class column" in err
    rows.loc[4, "precision_class"] = np.nan
    rows.to_csv(path, index=False)
    err = _fails(reference, capsys)
    assert f"rows/{FIGURE2}/rows.csv.gz row 5" in err and "no precision_class" in err


def test_a_folder_without_rows_is_refused(tmp_path):
    with pytest.raises(DapError, match="not a reference folder"):
        check_reference(tmp_path)
    with pytest.raises(DapError, match="not a reference folder"):
        regenerate(tmp_path)


def test_the_first_difference_names_the_line():
    assert first_difference("a\nb\n", "a\nb\n") is None
    assert first_difference("a\nb\n", "a\nc\n")[0] == 2
    assert first_difference("a\nb\nc\n", "a\nb\n") == (3, "the file has more lines than the rows give")
    assert first_difference("a\n", "a\nb\n")[0] == 2
    assert first_difference("a\n", "a")[0] == 2


def test_the_registry_decides_what_is_derived(reference, monkeypatch):
    """A registered function's files are derived, written by `report DIR` and checked."""
    def notebooks(ref: Path, out: Path) -> None:
        (out / "notebooks.md").write_text("\n".join(sorted(p.name for p in (ref / "rows").iterdir())) + "\n")

    monkeypatch.setattr(check, "GENERATED", [check.Generated(("notebooks.md",), notebooks, "the notebooks")])
    with pytest.raises(StaleReference, match="notebooks.md is missing"):
        check_reference(reference)
    assert regenerate(reference) == [reference / "notebooks.md"]
    assert check_reference(reference) == "2 row files, 1 generated files, 0 published tables re-derived, all current"
    (reference / "notebooks.md").write_text(f"{TABLE1}\n")
    with pytest.raises(StaleReference, match="notebooks.md line 2: the file ends where the rows give"):
        check_reference(reference)


# ----------------------------------------------------------------------------- published tables
def _publish_table1(reference: Path, rows: pd.DataFrame) -> None:
    """Table 1 as its notebook publishes it, from ``rows`` (a subset of the reference's), into the
    reference's top, with its published.csv entries."""
    from dap.report.tables import publish_table

    publish_table(rows, "table1", reference, "Table 1 (a test's caption).")
    files = ["table1.csv", "table1.md", "table1.sources.json"]
    pd.DataFrame({"file": files, "notebook": TABLE1, "commit": "abc"}).to_csv(reference / "published.csv", index=False)
    assert cli.main(["report", str(reference)]) == 0  # CLAIMS.md links the table now at the top


def test_a_published_table_is_made_again_from_the_rows_of_its_fits(reference, capsys):
    rows = _read_rows(reference / "rows" / TABLE1 / "rows.csv.gz")
    _publish_table1(reference, rows[rows["clip_id"] != "c5"].sample(frac=1.0, random_state=0))  # 5 of 6 clips
    assert check_reference(reference).endswith("1 published tables re-derived, all current")
    csv = pd.read_csv(reference / "table1.csv")
    first = int(csv["mean"].first_valid_index())  # the cells the paper has and the rows do not are empty
    csv.loc[first, "mean"] *= 1 + 1e-7
    csv.to_csv(reference / "table1.csv", index=False)
    assert f"table1.csv line {first + 2}, column mean:" in _fails(reference, capsys)
    _publish_table1(reference, rows[rows["clip_id"] != "c5"])
    md = (reference / "table1.md").read_text().replace("(n=5)", "(n=6)", 1)
    (reference / "table1.md").write_text(md)
    assert "table1.md line " in _fails(reference, capsys)


def test_a_published_table_whose_fits_left_the_rows_fails(reference, capsys):
    rows = _read_rows(reference / "rows" / TABLE1 / "rows.csv.gz")
    _publish_table1(reference, rows)
    _write_rows(reference, TABLE1, rows[rows["clip_id"] != "c0"])
    assert cli.main(["report", str(reference)]) == 0  # CLAIMS and SUMMARY follow the rows; the table cannot
    assert "2 of the table's fits are not in the rows" in _fails(reference, capsys)
    (reference / "table1.sources.json").write_text('{"table": "table1"')  # cut short
    assert "table1.sources.json: not a table's sources (JSONDecodeError" in _fails(reference, capsys)


# ----------------------------------------------------------------------------- the fingerprint
@pytest.fixture
def modules(tmp_path, monkeypatch):
    """``CODE_MODULES`` = one package of temporary files; the fingerprint's cache is emptied around."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text('"""Module doc."""\n\nX = 1\n\n\ndef f(y):\n    """Doc."""\n    return X + y\n')
    monkeypatch.setattr(fingerprint, "ROOT", tmp_path)
    monkeypatch.setattr(fingerprint, "CODE_MODULES", {"t": ("pkg",)})
    code_fingerprint.cache_clear()
    yield pkg
    code_fingerprint.cache_clear()


def _fingerprint() -> str:
    code_fingerprint.cache_clear()
    return code_fingerprint("t")


def test_the_fingerprint_ignores_docstrings_comments_and_layout(modules):
    before = _fingerprint()
    assert before.startswith("t:") and len(before) == len("t:") + 12
    (modules / "a.py").write_text('"""Another module doc."""\n# a comment\nX = 1  # why\n\ndef f(y):\n'
                                  '    """Another doc,\n    on two lines."""\n\n    return (X +\n            y)\n')
    assert _fingerprint() == before


@pytest.mark.parametrize("change", ["X = 2\n", "def g():\n    return 0\n"])
def test_the_fingerprint_changes_with_the_code(modules, change):
    before = _fingerprint()
    (modules / "a.py").write_text((modules / "a.py").read_text() + change)
    assert _fingerprint() != before


def test_a_new_module_of_a_package_changes_the_fingerprint_and_a_missing_one_is_an_error(modules, monkeypatch):
    before = _fingerprint()
    (modules / "b.py").write_text("Y = 0\n")
    assert _fingerprint() != before
    monkeypatch.setattr(fingerprint, "CODE_MODULES", {"t": ("pkg.nowhere",)})
    with pytest.raises(DapError, match="pkg.nowhere has no source file"):
        _fingerprint()
    with pytest.raises(DapError, match="unknown family"):
        code_fingerprint("paper3")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(fingerprint.ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_every_import_of_a_fingerprinted_module_is_fingerprinted_or_said_to_compute_nothing():
    """The module list cannot silently miss code: a fingerprinted module that imports a ``dap``
    module outside its family's list, or a new module of paper 2, fails here until the module
    joins the list or :data:`dap.core.fingerprint.NOT_RESULTS` says why it computes no result
    (paper 1's packages of result code are listed whole: a new design, task or study is covered)."""
    every = {_module(p) for p in (fingerprint.ROOT / "dap").rglob("*.py")}
    assert set(NOT_RESULTS) <= every, set(NOT_RESULTS) - every
    paper2 = {_module(p) for p in fingerprint.module_files(fingerprint.CODE_MODULES[PAPER2])}
    unclassified = {m for m in every if m.startswith("dap.wiass") and m not in paper2 and m not in NOT_RESULTS}
    assert not unclassified, f"paper 2 modules neither fingerprinted nor in NOT_RESULTS: {sorted(unclassified)}"
    for family, names in fingerprint.CODE_MODULES.items():
        files = fingerprint.module_files(names)
        covered = {_module(p) for p in files}
        missing = set()
        for path in files:
            for node in ast.walk(ast.parse(path.read_text())):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in every else node.module
                               for a in node.names]
                missing |= {t for t in targets if t.startswith("dap")
                            and t in every and t not in covered and t not in NOT_RESULTS and t != "dap"}
        assert not missing, f"{family}: imported but neither fingerprinted nor in NOT_RESULTS: {sorted(missing)}"


# ----------------------------------------------------------------------------- fit ids and rows
CLIP = Clip(id="c0", dataset="digits", audio=np.linspace(-0.5, 0.5, 64).astype(np.float32))


def test_fit_ids_differ_between_precision_classes_and_codes(monkeypatch):
    grid = Grid(task="denoise-gaussian", settings={"iterations": 3, "precision": "auto"}, profile="test")
    fp32, bf16 = (replace(grid, precision_class=c) for c in ("fp32/cpu", "bf16/cpu"))
    assert fit_id(fp32.fit_config(CLIP, "conv")) != fit_id(bf16.fit_config(CLIP, "conv"))
    assert fp32.fit_config(CLIP, "conv")["code"] == code_fingerprint(PAPER1)
    before = fit_id(fp32.fit_config(CLIP, "conv"))
    monkeypatch.setattr("dap.engine.grid.code_fingerprint", lambda family: f"{family}:other")
    assert fit_id(fp32.fit_config(CLIP, "conv")) != before


def test_paper2_fit_ids_cover_the_code_and_the_device(monkeypatch):
    from dap.wiass import evaluate

    result = SimpleNamespace(settings=SimpleNamespace(id="model"), device="cpu")
    on_cpu = evaluate.evaluation_id(result, "BL1", "f0", 0)
    assert evaluate.row_stamp("cpu") == {"code": code_fingerprint(PAPER2), "precision_class": "fp32/cpu"}
    monkeypatch.setattr("dap.core.device.device_name", lambda d="": "NVIDIA H200")
    assert evaluate.row_stamp("cuda")["precision_class"] == "fp32/NVIDIA H200"
    assert evaluate.evaluation_id(SimpleNamespace(settings=result.settings, device="cuda"), "BL1", "f0", 0) != on_cpu
    monkeypatch.setattr(evaluate, "code_fingerprint", lambda family: f"{family}:other")
    assert evaluate.evaluation_id(result, "BL1", "f0", 0) != on_cpu


def test_baseline_rows_carry_the_columns_and_other_code_is_not_reused(tmp_path, monkeypatch):
    from dap.studies.common import run_baselines

    grid = Grid(task="denoise-gaussian", settings={"max_samples": None}, profile="test")
    calls = []

    def silence(clip):
        calls.append(clip.id)
        return np.zeros_like(clip.audio)

    def evaluate(clip, estimate):
        return {"error": float(np.abs(clip.audio - estimate).mean())}

    store = ResultStore(tmp_path)
    rows = run_baselines(store, grid, [CLIP], {"silence": silence}, evaluate, progress=lambda _: None)
    assert {"code", "precision_class"} <= set(ROW_COLUMNS)
    assert rows["code"].tolist() == [code_fingerprint(PAPER1)]
    assert rows["precision_class"].tolist() == [NUMPY_PRECISION_CLASS]  # numpy on the CPU, wherever the fits run
    assert len(calls) == 2  # a warm-up call, then the timed one
    run_baselines(ResultStore(tmp_path), grid, [CLIP], {"silence": silence}, evaluate, progress=lambda _: None)
    assert len(calls) == 2  # recorded: not run again
    monkeypatch.setattr("dap.engine.grid.code_fingerprint", lambda family: f"{family}:other")
    again = run_baselines(ResultStore(tmp_path), grid, [CLIP], {"silence": silence}, evaluate,
                          progress=lambda _: None)
    assert len(calls) == 4 and again["code"].tolist() == [f"{PAPER1}:other"]  # other code: computed again
    assert len(ResultStore(tmp_path).rows) == 2  # the old row stays, under its own fit id
