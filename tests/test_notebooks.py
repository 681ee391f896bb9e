"""Execute every notebook in the smoke profile through the same runner as run_all.sh, then read
back the named checks each notebook published and assert them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dap.config import profiles

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One smoke run of every notebook into a temporary results folder."""
    out = tmp_path_factory.mktemp("results")
    env = dict(os.environ, DAP_RESULTS=str(out))
    proc = subprocess.run([sys.executable, "-m", "dap.runner", "--profile", "smoke", "--timeout", "900", "--no-plan"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    return out, proc


def _checks(out: Path, name: str) -> dict:
    return json.loads((out / name / "checks.json").read_text())


@pytest.mark.notebooks
@pytest.mark.timeout(2400)  # the session fixture runs every notebook (several minutes on 2 cores)
def test_every_notebook_runs_in_the_smoke_profile(smoke_run):
    out, proc = smoke_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in NOTEBOOKS:
        assert (out / name / f"{name}.ipynb").exists(), f"{name} left no executed notebook"
    assert (out / "SUMMARY.md").exists()
    assert "not run in this profile" not in (out / "CLAIMS.md").read_text().split("| P1-T1-1-digits-PSNR |")[1].split("\n")[0]


@pytest.mark.notebooks
def test_quickstart_publishes_its_checks(smoke_run):
    m = _checks(smoke_run[0], "00_quickstart")
    assert (m["stft_bins"], m["stft_frames"]) == (512, 256)
    assert m["round_trip_snr_db"] > 100
    assert 0 < m["input_snr_db"] < 15  # sigma 0.1 on a peak-normalised clip


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    import nbformat

    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), name
        assert any("parameters" in c.metadata.get("tags", []) for c in code), name


@pytest.mark.notebooks
def test_runner_collects_a_failure_and_exits_non_zero(tmp_path):
    env = dict(os.environ, DAP_RESULTS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "dap.runner", "--profile", "smoke", "00", "-p", "dataset", "nosuch"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "FAILED 00_quickstart" in proc.stdout and "nosuch" in proc.stdout  # the reason, in one line
    assert not (tmp_path / "00_quickstart" / "00_quickstart.ipynb").exists()  # a failed run never counts as done
    assert (tmp_path / "00_quickstart" / "00_quickstart.failed.ipynb").exists()
    assert (tmp_path / "SUMMARY.md").exists() and "failed" in (tmp_path / "run_log.csv").read_text()
    log = pd.read_csv(tmp_path / "run_log.csv")  # what decides the numbers, beside the settings
    assert {"notebook", "profile", "status", "seconds", "peak_rss_mb", "commit", "cpu", "precision", "torch",
            "finished"} <= set(log.columns)
    assert log["precision"].iloc[0] in ("fp32", "bf16") and log["cpu"].iloc[0] and len(str(log["commit"].iloc[0])) >= 7
    assert "not run in this profile" in (tmp_path / "CLAIMS.md").read_text()  # written even when nothing ran


def test_runner_rejects_an_unknown_notebook():
    proc = subprocess.run([sys.executable, "-m", "dap.runner", "no_such_notebook"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no notebook matches" in proc.stderr


def test_runner_rejects_an_unknown_parameter_before_running_anything(tmp_path):
    env = dict(os.environ, DAP_RESULTS=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "dap.runner", "--profile", "smoke", "02", "-p", "iteratons", "3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "'iteratons'" in proc.stderr and "did you mean 'iterations'" in proc.stderr
    assert not (tmp_path / "02_table1_gaussian_denoising").exists()


def _parameters_cell_and_code(name: str):
    """The names the ``parameters`` cell of notebook ``name`` assigns, and the other code cells' sources."""
    import ast

    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, name
    tree = ast.parse("".join(params[0]["source"]))
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    return names, ["".join(c["source"]) for c in code if c is not params[0]]


def _bound_names(source: str) -> set[str]:
    """Every name ``source`` binds anywhere (assignments, loop targets, imports, definitions)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            out.add(node.name if not isinstance(node, ast.arg) else node.arg)
    return out


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_parameter_is_spelt_once_and_read_by_its_settings(name):
    """The parameters cell declares each parameter once; one call reads them all by the settings'
    field names (``profiles.from_parameters``), so a parameter the settings do not know would be
    dropped, and a later cell binding a setting's name would be read as an override: neither happens."""
    from dap.config import profiles

    fields = set(profiles.settings_class(name).names())
    params, cells = _parameters_cell_and_code(name)
    assert params - fields <= {"source", "data_root"}, f"{name}: parameters the settings do not read"
    calls = [c for c in cells if "profiles.from_parameters(" in c]
    assert len(calls) == 1 and "globals())" in calls[0], name
    assert not any("profiles.resolve(" in c or "__import__" in c for c in cells), name
    clashes = set().union(*(_bound_names(c) for c in cells)) & (fields - params)
    assert not clashes, f"{name}: code cells bind setting names {sorted(clashes)}"


@pytest.mark.notebooks
def test_paper_notebooks_publish_their_checks(smoke_run):
    out = smoke_run[0]
    for name in ("02_table1_gaussian_denoising", "03_table2_environmental_denoising"):
        m = _checks(out, name)
        assert m["n_rows"] > 0 and m["n_failed_rows"] == 0, name
    fig1 = _checks(out, "01_figure1_denoising_example")
    assert fig1["n_designs"] == 4
    assert all(f"{d}/discrepancy_iteration" in fig1 for d in ("conv", "dilated_exp_dense"))  # the blind rule, marked
    for name, table in (("02_table1_gaussian_denoising", "table1"), ("03_table2_environmental_denoising", "table2")):
        assert "Selection: blind: discrepancy principle" in (out / name / f"{table}.md").read_text()
    stop = _checks(out, "11_blind_stopping")
    assert stop["n_rows"] > 0 and stop["n_failed_rows"] == 0 and stop["n_rules"] == 4
    assert stop["claims/n_fits"] == 4 and stop["noise_error/auto/white/mean_abs_db"] < 3.0  # white noise within 3 dB
    fig2 = _checks(out, "06_figure2_convergence")
    assert "harmonic/seconds_per_iteration" in fig2 and fig2["harmonic/seconds_per_iteration"] > 0
    inpaint = _checks(out, "04_table3_inpainting")
    assert 0.1 <= inpaint["shortest_gap_s"] <= inpaint["longest_gap_s"] <= 0.25
    assert _checks(out, "05_table4_separation")["per_source_datasets"] == "drums,piano"
    assert _checks(out, "07_wiass_figure2_side_information")["n_configurations"] == 8
    attention = _checks(out, "08_wiass_figure3_attention")
    assert attention["M2_side_length"] == 300 and attention["M2_attention_rows_sum"] == pytest.approx(1.0)
    for name, key in (("02_table1_gaussian_denoising", "table1"), ("04_table3_inpainting", "table3"),
                      ("05_table4_separation", "table4")):
        table = (out / name / f"{key}.md").read_text()
        assert "Profile: `smoke`" in table
        _assert_paper_numbers_beside_ours(table, key, profiles.resolve(name, "smoke"))
    _assert_baselines_shown(out)


def _assert_paper_numbers_beside_ours(table: str, key: str, p) -> None:
    """Every published mean ± std of the designs and data sets the run covered stands in the table."""
    from dap.report import paper

    published = paper.table(key)
    shown = published[published["design"].isin(p.designs) & published["dataset"].isin(p.datasets)]
    assert len(shown) > 0
    for r in shown.itertuples():
        assert f"paper {r.mean:.2f} ± {r.std:.2f}" in table, (key, r.design, r.dataset, r.metric)


def _assert_baselines_shown(out: Path) -> None:
    """Tables 1-4 show their classical baselines as extra rows with their cost, never in the ranking."""
    for name, table, designs in (("02_table1_gaussian_denoising", "table1", ("wiener-oracle", "noisereduce")),
                                 ("03_table2_environmental_denoising", "table2", ("wiener-oracle", "noisereduce")),
                                 ("04_table3_inpainting", "table3", ("stft-interp", "ar-interp")),
                                 ("05_table4_separation", "table4", ("hpss",))):
        text = (out / name / f"{table}.md").read_text()
        extra = text.split("Classical baselines on the same clips")[1]
        for d in designs:
            assert d in extra and f"`{d}` = " in text and "ms per clip" in text, (name, d)
            assert not any(d in line for line in text.splitlines() if line.startswith("Best design as in the paper"))
        assert any(k.startswith(f"none/{designs[0]}/") for k in _checks(out, name)), name
    assert "baseline: HPSS" in (out / "05_table4_separation" / "table4_per_mixture.md").read_text()


@pytest.mark.notebooks
def test_teaching_notebooks_publish_their_checks(smoke_run):
    out = smoke_run[0]
    explore = _checks(out, "09_explore_deep_priors")
    assert explore["autorun"] and explore["run/state"] == "done" and explore["run/iterations_done"] == 3
    assert explore["run/n_updates"] >= 4  # every iteration (smoke: update_every 1) + the final one
    assert explore["compare/n_designs"] == 4 and explore["compare/state"] == "done"
    assert (out / "09_explore_deep_priors" / "run.png").exists()
    why = _checks(out, "10_why_dilation_and_density")
    for design in ("conv", "dilated"):  # the measured footprint fills the analytic field along frequency
        assert why[f"footprint/{design}/bins"] == why[f"rf/{design}/bins"]
    assert why["rf/dilated_exp/frames"] > why["rf/dilated/frames"] > why["rf/conv/frames"]
    assert why["params/conv"] == why["params/dilated_exp"] < why["params/dilated_exp_dense"]
    assert why["gflop/dilated_exp_dense"] > why["gflop/conv"] > 0
    assert why["bias/iterations"] == 2 and 0.5 < why["bias/clean_final"] < 1.5
