"""``python -m dap grid``: the fits of a notebook outside papermill, into the notebook's own store with
the same fit ids, so the notebook afterwards finds every fit recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dap import cli
from dap.config import profiles
from dap.core.files import notebook_dir
from dap.core.store import ResultStore
from dap.studies.plans import FIT_PLANS, PlanError, planned_notebooks

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _code(name: str) -> str:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_every_plan_is_the_study_call_of_its_notebook_with_its_store():
    """The registry and the notebooks say the same thing: the study each calls (and its noise), and
    which folder holds its rows; every paper-1 notebook that fits has a plan."""
    fitting = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
               if re.search(r"\b(denoising|inpainting|separation|stopping)_study\(store", _code(p.stem))}
    assert fitting == set(FIT_PLANS)
    for name, plan in FIT_PLANS.items():
        code = _code(name)
        study = getattr(plan.study, "func", plan.study)
        assert f"{study.__name__}(store, p" in code, name
        noise = getattr(plan.study, "keywords", {}).get("noise")
        if noise:
            assert f'noise="{noise}"' in code, name
        store = re.search(r"^store = ResultStore\((.*)\)\s*(?:#.*)?$", code, re.M).group(1)
        assert store == ("out" if plan.store_of == name else f'notebook_dir("{plan.store_of}")'), (name, store)


def test_selection_and_bad_names_are_refused_before_any_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    assert planned_notebooks(["02", "05_table4_separation"]) == ["02_table1_gaussian_denoising", "05_table4_separation"]
    with pytest.raises(PlanError, match="paper 2's notebooks train models"):
        planned_notebooks(["07"])
    assert cli.main(["grid", "02", "--profile", "smoke", "-p", "sigmaa", "0.2"]) == cli.EXIT_ERROR
    assert "no selected notebook has a parameter 'sigmaa' (did you mean 'sigma'?)" in capsys.readouterr().err
    assert cli.main(["grid", "07", "--profile", "smoke"]) == cli.EXIT_ERROR
    assert not any(tmp_path.iterdir())  # nothing fitted, nothing written


@pytest.mark.timeout(300)
def test_grid_records_the_fits_the_notebook_then_finds(tmp_path, monkeypatch, capsys, one_thread):
    """`grid 02 --profile smoke` fits; the notebook's own study call with the notebook's settings then
    runs no fit and returns the same rows."""
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    args = ["grid", "02", "--profile", "smoke", "-p", "datasets", "digits", "-p", "workers", "1"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "02_table1_gaussian_denoising: " in out and "rows recorded" in out and "[1/" in out

    from dap.studies import denoising_study

    p = profiles.resolve("02_table1_gaussian_denoising", "smoke", datasets=["digits"], workers=1)
    said: list[str] = []
    rows = denoising_study(ResultStore(notebook_dir("02_table1_gaussian_denoising")), p, noise="gaussian",
                           progress=said.append)
    assert not [line for line in said if line.startswith("[")], said  # "[k/N] ..." announces a fit
    assert len(rows) and (rows["status"] == "ok").all()
    assert f"{len(rows)} rows recorded" in out
