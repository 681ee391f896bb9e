"""Which code computed a row: a fingerprint of the modules whose code determines results.

Every fit id and every row carries ``code`` = :func:`code_fingerprint` of its family (paper 1's fits
and baselines, paper 2's trainings and evaluations), so a row computed by other code is never taken
for a current one: the store's ``has(fit id)`` misses and the fit runs again, and
``python -m dap report --check`` names a reference row of other code (docs/reference.md).

The fingerprint hashes each module's syntax tree with its docstrings removed: comments, docstrings
and layout leave it unchanged, any change of code changes it. :data:`CODE_MODULES` is the one list of
what counts; :data:`NOT_RESULTS` names, with the reason, every module those import that computes no
result (``tests/test_report_check.py`` fails on an import that is in neither).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from dap.core.errors import DapError

#: The families of rows, each with its own fingerprint (``code`` = ``"<family>:<12 hex>"``).
PAPER1, PAPER2 = "paper1", "paper2"

#: Modules shared by both papers' results: audio I/O and STFT, seeds, metrics, clip loading and cutting.
_SHARED = ("dap.core.audio", "dap.core.seeds", "dap.metrics", "dap.data")

#: Per family, the modules whose code computes its results (a package's name covers each of its modules).
CODE_MODULES: dict[str, tuple[str, ...]] = {
    PAPER1: _SHARED + (
        "dap.engine.fit", "dap.engine.read_back", "dap.core.device",  # the fit engine, its precision and determinism
        "dap.config.schedule",                    # FitConfig's default schedule
        "dap.priors", "dap.tasks", "dap.noise", "dap.baselines",
        # the studies make each fit's observation (noise, gaps, mixtures, cut windows) and its scoring;
        # the whole package, so that a new study is covered without editing this list
        "dap.studies",
    ),
    PAPER2: _SHARED + (
        "dap.wiass.model", "dap.wiass.train", "dap.wiass.batches", "dap.wiass.train_settings",
        "dap.wiass.evaluate", "dap.wiass.references", "dap.wiass.side_info", "dap.wiass.configurations",
        "dap.wiass.examples", "dap.wiass.data", "dap.wiass.fragment", "dap.wiass.remix", "dap.wiass.study_data",
        "dap.wiass.corpus", "dap.wiass.corpus_reading", "dap.wiass.render",  # the generated corpus
        "dap.wiass.study", "dap.wiass.learning_curve",  # which models are trained, and the evaluation loops
    ),
}

#: Modules the fingerprinted ones import whose code computes no result, and why it does not.
NOT_RESULTS: dict[str, str] = {
    "dap.core.errors": "exception classes",
    "dap.core.files": "atomic file writing",
    "dap.core.text": "message formatting",
    "dap.core.provenance": "names what ran (version, commit, machine)",
    "dap.core.registry": "name -> object registries (what is registered is fingerprinted where it is defined)",
    "dap.core.store": "stores rows",
    "dap.config.notebook_settings": "settings classes: the values that change a fit are in its id",
    "dap.config.profiles": "settings values per notebook and profile: the values that change a fit are in its id",
    "dap.engine.grid": "schedules fits and writes the rows they computed",
    "dap.engine.audit_selection": "chooses which fits run during an audit",
    "dap.config.costs": "measured costs, for plans, estimates and the order of fits",
    "dap.claims.paired_test": "statistics of the tables made from rows (the learning curve's p-values)",
    "dap.engine.cluster": "where fits run (Dask)",
    "dap.core.fingerprint": "this fingerprint",
    "dap.core.device": "paper 2 uses only precision_class (paper 1's fits take their numerics from it)",
    "dap.engine.fit": "paper 2 imports only pick_device (the device is in the precision class)",
    "dap.report.paper": "the papers' published numbers, for captions",
    "dap.report.plots": "figures from results",
    "dap.report.tables": "tables and captions from rows",
    "dap.wiass.captions": "captions from results",
    "dap.wiass.figure2": "paper 2's Figure 2 from rows",
    "dap.wiass.figure3": "paper 2's Figure 3 from results",
    "dap.wiass.tables": "paper 2's tables from rows",
    "dap.wiass": "re-exports paper 2's modules",
    "dap.wiass.plots": "paper 2's figures",
}

#: The folder that holds the ``dap`` package (module names resolve to files under it).
ROOT = Path(__file__).resolve().parents[2]


def module_files(names) -> list[Path]:
    """The source files of the dotted module names ``names`` under :data:`ROOT`, sorted; a package's
    name gives each ``.py`` file directly in it.

    Args:
        names: dotted names such as ``"dap.metrics"`` or ``"dap.priors"``.

    Returns:
        Their files, sorted and without repeats; DapError naming a name that has no file.
    """
    out = set()
    for name in names:
        base = ROOT.joinpath(*name.split("."))
        found = sorted(base.glob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
        if not found or not found[0].is_file():
            raise DapError(f"dap.core.fingerprint: module {name} has no source file under {ROOT}")
        out.update(found)
    return sorted(out)


def source_digest(source: str, name: str = "<source>") -> str:
    """sha1 of ``source``'s syntax tree without docstrings (comments and layout are not in the tree).

    Args:
        source: Python source text.
        name: the file it came from, for the error message.

    Returns:
        40 hex digits; DapError naming ``name`` when the source does not parse.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise DapError(f"{name}: cannot fingerprint a module that does not parse "
                       f"({exc.msg}, line {exc.lineno})") from None
    return hashlib.sha1(_canonical(_without_docstrings(tree)).encode()).hexdigest()


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:]
    return tree


def _canonical(node) -> str:
    """``ast.dump`` without positions, and without empty fields, so that Python versions that add a
    field (3.12's ``type_params``) or leave empty ones out (3.13's ``ast.dump``) agree."""
    if isinstance(node, ast.AST):
        fields = [f"{k}={_canonical(v)}" for k, v in ast.iter_fields(node) if v is not None and v != []]
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(_canonical(v) for v in node)}]"
    return repr(node)


@lru_cache(maxsize=None)
def code_fingerprint(family: str) -> str:
    """``"<family>:<12 hex>"``: the fingerprint of the code of :data:`CODE_MODULES` ``[family]``.

    Args:
        family: :data:`PAPER1` or :data:`PAPER2`.

    Returns:
        The value of the rows' ``code`` column and of every fit id's ``code`` setting.
    """
    if family not in CODE_MODULES:
        raise DapError(f"unknown family of rows {family!r}; known: {', '.join(CODE_MODULES)}")
    digest = hashlib.sha1()
    for path in module_files(CODE_MODULES[family]):
        name = path.relative_to(ROOT).as_posix()
        digest.update(f"{name}\0{source_digest(path.read_text(encoding='utf-8'), name)}\n".encode())
    return f"{family}:{digest.hexdigest()[:12]}"
