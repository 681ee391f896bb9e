import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_environment_yml_pins_the_same_stack_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = project["dependencies"] + extras["test"] + extras["corpus"]
    assert all("==" in p for p in pins), "every dependency is pinned"
    env = set(re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+==[^\s#]+)", (REPO / "environment.yml").read_text(), re.M))
    assert set(pins) <= env, sorted(set(pins) - env)
