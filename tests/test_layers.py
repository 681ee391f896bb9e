"""The dependency contract of dap.layers, checked on the source: every import of every module
(function-local ones included) points to the same layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dap.layers import LAYERS, NAMES, layer_of

ROOT = Path(__file__).resolve().parent.parent / "dap"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, modules: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a ``dap`` module in ``source`` (``from dap import x``
    counts as ``dap.x`` when ``x`` is a module)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("dap")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level or not base.startswith("dap"):  # dap uses no relative imports
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((node.lineno, sub if sub in modules else base))
    return out


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def violations(modules: dict[str, str]) -> list[str]:
    """Imports against the contract in ``{module: source}``. A package's ``__init__`` may re-export
    its own submodules; importing a name from such a package counts as importing the highest
    layer it re-exports."""
    names = set(modules)
    imports = {mod: imported_modules(source, mod, names) for mod, source in modules.items()}

    def own(mod, target):
        return target.startswith(mod + ".")

    def layer(target):
        if target in names and any(own(target, t) for _, t in imports[target]):  # a re-exporting package
            return max([layer_of(target)] + [layer(t) for _, t in imports[target] if own(target, t)])
        return layer_of(target)

    bad = []
    for mod in modules:
        for line, target in imports[mod]:
            if target == mod or own(mod, target):
                continue
            if mod.startswith("dap.core") and not (target == "dap.core" or target.startswith("dap.core.")):
                bad.append(f"{mod}:{line} imports {target}: dap.core imports nothing else from dap")
            elif layer(target) > layer_of(mod):
                bad.append(f"{mod}:{line} ({NAMES[layer_of(mod)]}) imports {target} ({NAMES[layer(target)]})")
    return bad


def test_every_module_has_a_layer():
    for mod in all_modules():
        layer_of(mod)  # raises, naming the module, when dap.layers does not place it


def test_no_import_points_up_a_layer():
    sources = {m: p.read_text() for m, p in all_modules().items()}
    assert violations(sources) == []


def test_the_check_fails_on_an_upward_import():
    sources = {m: p.read_text() for m, p in all_modules().items()}
    sources["dap.metrics"] += "\n\ndef _late():\n    from dap.studies import denoising\n"
    sources["dap.core.audio"] += "\nfrom dap import metrics\n"
    found = violations(sources)
    assert any(v.startswith("dap.metrics:") and "dap.studies.denoising (applications)" in v for v in found)
    assert any(v.startswith("dap.core.audio:") and "imports dap.metrics" in v for v in found)


def test_the_contract_is_the_one_the_package_docstring_states():
    import dap

    for name in NAMES:
        assert name in dap.__doc__, f"dap/__init__.py's dependency map does not name the layer {name!r}"
    assert set(LAYERS.values()) == set(range(len(NAMES)))


@pytest.mark.parametrize("prefix", sorted(LAYERS))
def test_every_layer_entry_names_a_module_that_exists(prefix):
    assert any(m == prefix or m.startswith(prefix + ".") for m in all_modules()), prefix


def import_cycles(modules: dict[str, str]) -> list[list[str]]:
    """Cycles of the import graph of ``{module: source}`` (a package importing its own submodules
    is no edge: that is how it re-exports)."""
    names = set(modules)
    graph = {mod: {t for _, t in imported_modules(src, mod, names) if t in names and t != mod
                   and not t.startswith(mod + ".")} for mod, src in modules.items()}
    cycles, state = [], {}

    def visit(mod, path):
        state[mod] = "open"
        for t in sorted(graph[mod]):
            if state.get(t) == "open":
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    return cycles


def test_no_import_circle():
    assert import_cycles({m: p.read_text() for m, p in all_modules().items()}) == []


def test_the_cycle_check_finds_a_circle():
    sources = {m: p.read_text() for m, p in all_modules().items()}
    sources["dap.restore.summary"] += "\n\ndef _late():\n    from dap.restore import pipeline\n"
    assert any("dap.restore.pipeline" in c and "dap.restore.summary" in c for c in import_cycles(sources))
