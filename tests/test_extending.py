"""docs/extending.md runs: its code blocks, in order, register a toy design, task, baseline and notebook
and take them through the grid, the baselines, the report and the fit plans, editing no module."""

import re
from pathlib import Path

import pytest

from dap import baselines
from dap.config import profiles
from dap.priors import designs
from dap.studies import plans
from dap.tasks import registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def code_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown page, in order."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture
def fresh_registries(monkeypatch, tmp_path):
    """What the page registers is gone after the test (each registry restored in place: other modules
    hold the same dicts); results in tmp_path."""
    held = [designs._REGISTRY, designs.DESIGN_LABELS, registry._REGISTRY, baselines._REGISTRY, profiles.SETTINGS,
            profiles.PROFILES, plans.FIT_PLANS]
    saved = [dict(d) for d in held]
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield
    for d, before in zip(held, saved):
        d.clear()
        d.update(before)


def test_the_page_has_an_example_for_each_registry():
    text = "\n".join(code_blocks(DOC.read_text()))
    for call in ("register_design(", "register_task(", "register_baseline(", "register_notebook(", "register_plan("):
        assert call in text, call


def test_the_examples_of_docs_extending_run(fresh_registries):
    namespace: dict = {"__name__": "docs_extending"}
    for k, block in enumerate(code_blocks(DOC.read_text())):
        exec(compile(block, f"docs/extending.md, block {k + 1}", "exec"), namespace)
    rows = namespace["rows"]
    assert set(rows["selection"]) >= {"oracle", "last", "ema"} and set(rows["metric"]) == {"SNR"}
    assert (namespace["baselines"]["design"] == "attenuated-input").all()
    assert namespace["baselines"]["value"].astype(float).between(5.9, 6.1).all()  # half amplitude: 6.02 dB
    # a second run of the study finds every fit recorded
    again = namespace["task_study"](namespace["store"], namespace["p"], "attenuate", progress=lambda m: None)
    assert sorted(again["fit_id"]) == sorted(rows["fit_id"])


def test_registering_a_name_twice_is_refused(fresh_registries):
    with pytest.raises(designs.DesignError):
        designs.register_design(designs.get_design("conv"))
    with pytest.raises(registry.TaskError):
        registry.register_task(registry.get_task("denoise"))
    with pytest.raises(baselines.BaselineError):
        baselines.register_baseline(baselines.get_baseline("hpss"))
    with pytest.raises(profiles.SettingsError):
        nb = profiles.get_notebook("04_table3_inpainting")
        profiles.register_notebook(nb.name, nb.settings, nb.profiles)
    with pytest.raises(plans.PlanError):
        plans.register_plan("04_table3_inpainting", plans.get_plan("04_table3_inpainting").study)
