"""Conventions checked on the source: every forward says its tensor shapes (Args / Returns), every
function that takes a tensor has a docstring, no module is longer than 450 lines, and no two modules
under dap/ share the name settings.py."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "dap"
MODULES = sorted(ROOT.rglob("*.py"))
MAX_LINES = 450


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def takes_a_tensor(node) -> bool:
    args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
    return any(a.annotation is not None and "Tensor" in ast.unparse(a.annotation) for a in args)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_forwards_and_tensor_functions_are_documented(path):
    missing = []
    for node in functions(path):
        doc = ast.get_docstring(node) or ""
        if node.name == "forward":
            has_args = len(node.args.args) > 1 or node.args.kwonlyargs or node.args.vararg
            if "Returns" not in doc or (has_args and "Args" not in doc):
                missing.append(f"{node.name}:{node.lineno} (Args / Returns with shapes)")
        elif takes_a_tensor(node) and not doc:
            missing.append(f"{node.name}:{node.lineno}")
    assert not missing, f"{path.relative_to(ROOT.parent)}: {missing}"


def test_no_module_exceeds_the_line_limit():
    long = {str(p.relative_to(ROOT.parent)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_two_modules_share_the_name_settings_py():
    assert len([p for p in MODULES if p.name == "settings.py"]) <= 1
