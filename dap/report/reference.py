"""A reference folder extended by runs: ``./run_all.sh --reference results/reference`` (docs/reference.md).

Before a notebook runs, its reference rows are copied into the run's folder (:func:`seed_run`): the
store then skips every fit whose id is there, and a fit id covers the code and the precision class
(:mod:`dap.core.fingerprint`), so only rows the current code and numerics would compute again are
reused; the rest are computed. After the notebook succeeds (:func:`add_to_reference`), its current
rows go back compressed (``rows/<notebook>/<file>.csv.gz``), its published files (tables, captions,
figures) to the folder's top, and its run-log record to ``run_log.csv``. So the reference can be
completed notebook by notebook, over sessions or machines of one precision class, and committed after
each; ``python -m dap report`` then re-derives CLAIMS.md from the rows.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pandas as pd

from dap.claims.table import REFERENCE_ROWS, ROW_FILES
from dap.core.errors import DapError
from dap.core.files import atomic_write_bytes, atomic_write_text
from dap.core.fingerprint import code_fingerprint
from dap.core.store import ResultStore
from dap.report.tables import SOURCES_SUFFIX

#: Row files a notebook writes beside those claims read (paper 2's real stems, scored side by side).
EXTRA_ROW_FILES = ("rows_embedded.csv",)
#: What a notebook's folder holds that is published in the reference (tables, captions, figures, and
#: each table's ``<table>.sources.json``; not its checks.json, the notebook's own assertions, nor its
#: executed copy).
PUBLISHED_SUFFIXES = (".md", ".csv", ".png")
#: ``published.csv``: which notebook published each file at the reference's top, from which commit.
PUBLISHED_INDEX = "published.csv"


class ReferenceError(DapError):
    """A run cannot extend the reference as asked (another precision class, a name taken)."""


def published_name(notebook: str, name: str) -> str:
    """The file's name at the reference's top: paper 2's figures are prefixed ``wiass_`` (its Figures 2
    and 3 are not paper 1's)."""
    return f"wiass_{name}" if "_wiass_" in notebook and not name.startswith("wiass_") else name


def rows_folder(notebook: str) -> str:
    """The notebook whose folder holds ``notebook``'s rows: Figures 1 and 2 fit Table 1's clips into
    Table 1's store (:data:`dap.studies.plans.FIT_PLANS`), every other notebook into its own."""
    from dap.studies.plans import FIT_PLANS  # the studies: only where rows are moved

    return FIT_PLANS[notebook].store_of if notebook in FIT_PLANS else notebook


def seed_run(reference: str | Path, results: str | Path, notebook: str) -> int:
    """Copy the reference's row files of ``notebook`` into ``results/<notebook>/`` where the run has
    none yet, so that its store reuses every fit whose id they hold.

    Returns:
        The number of rows copied.
    """
    store = rows_folder(notebook)
    src, dst = Path(reference) / REFERENCE_ROWS / store, Path(results) / store
    copied = 0
    for name in ROW_FILES + EXTRA_ROW_FILES:
        packed = src / f"{name}.gz"
        if packed.exists() and not (dst / name).exists():
            dst.mkdir(parents=True, exist_ok=True)
            text = gzip.decompress(packed.read_bytes()).decode()
            atomic_write_text(dst / name, text)
            copied += max(text.count("\n") - 1, 0)
    return copied


def add_to_reference(results: str | Path, reference: str | Path, notebook: str, record: dict) -> list[Path]:
    """Put a successful run of ``notebook`` into the reference: the rows of the current code in its
    store (:func:`rows_folder`; compressed), its published files, its run-log record (replacing the
    notebook's older one).

    Args:
        results: the run's results folder (``results/<notebook>/`` holds its files).
        reference: the reference folder.
        notebook: the notebook's name.
        record: its run-log record (:func:`dap.runner.run_notebook`).

    Returns:
        The files written.
    """
    results, reference = Path(results), Path(reference)
    store = rows_folder(notebook)
    written = [*_pack_rows(results / store, reference / REFERENCE_ROWS / store, _precision_of(reference)),
               *_publish(results / notebook, reference, notebook, record.get("commit", ""))]
    log = reference / "run_log.csv"
    old = pd.read_csv(log) if log.exists() else pd.DataFrame(columns=["notebook"])
    new = pd.concat([old[old["notebook"] != notebook], pd.DataFrame([record])], ignore_index=True)
    written.append(_write_csv(log, new))
    return written


def _classes(rows: pd.DataFrame) -> dict[str, set]:
    """``{family: precision classes}`` of the fitted rows (numpy results run the same anywhere)."""
    fitted = rows[rows["precision_class"].fillna("numpy/cpu") != "numpy/cpu"]
    return {fam: set(block["precision_class"]) for fam, block in fitted.groupby(fitted["code"].str.split(":").str[0])}


def _precision_of(reference: Path) -> dict[str, set]:
    """The precision classes of the reference's fits so far, per family (paper 2 always trains in fp32)."""
    out: dict[str, set] = {}
    for path in sorted((reference / REFERENCE_ROWS).glob("*/*.gz")):
        rows = pd.read_csv(path)
        if {"code", "precision_class"} <= set(rows.columns):
            for fam, classes in _classes(rows).items():
                out.setdefault(fam, set()).update(classes)
    return out


def _pack_rows(folder: Path, dst: Path, precision: dict[str, set]) -> list[Path]:
    written = []
    for name in ROW_FILES + EXTRA_ROW_FILES:
        if not (folder / name).exists():
            continue
        rows = ResultStore(folder, name).rows
        if "code" not in rows or "precision_class" not in rows:
            continue  # written before rows said which code made them: nothing current to keep
        current = rows["code"].map(lambda c: isinstance(c, str) and c == code_fingerprint(c.split(":")[0]))
        rows = rows[current]  # rows of older code stay in the run's folder, never in the reference
        for fam, classes in _classes(rows).items():
            if precision.get(fam) and classes - precision[fam]:
                raise ReferenceError(f"{folder / name}: {fam} rows of precision class {sorted(classes)} cannot join "
                                     f"a reference of {sorted(precision[fam])}; extend it on a machine of that "
                                     f"class or start another reference folder")
        buf = io.StringIO()
        rows.sort_values(["fit_id", "selection", "metric"], kind="stable").to_csv(buf, index=False)
        dst.mkdir(parents=True, exist_ok=True)
        path = dst / f"{name}.gz"
        atomic_write_bytes(path, gzip.compress(buf.getvalue().encode(), mtime=0))
        written.append(path)
    return written


def _publish(folder: Path, reference: Path, notebook: str, commit: str) -> list[Path]:
    index_path = reference / PUBLISHED_INDEX
    index = pd.read_csv(index_path, dtype=str) if index_path.exists() else pd.DataFrame(columns=["file", "notebook", "commit"])
    entries = {r["file"]: r for r in index.to_dict("records")}
    written = []
    for path in sorted(folder.iterdir()):
        published = path.suffix in PUBLISHED_SUFFIXES or path.name.endswith(SOURCES_SUFFIX)
        if not path.is_file() or not published or path.name in ROW_FILES + EXTRA_ROW_FILES:
            continue
        target = published_name(notebook, path.name)
        if entries.get(target, {"notebook": notebook})["notebook"] != notebook:
            raise ReferenceError(f"{reference / target}: already published by {entries[target]['notebook']}, "
                                 f"not by {notebook}")
        shutil.copyfile(path, reference / target)
        entries[target] = {"file": target, "notebook": notebook, "commit": commit}
        written.append(reference / target)
    written.append(_write_csv(index_path, pd.DataFrame([entries[f] for f in sorted(entries)])))
    return written


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return atomic_write_text(path, buf.getvalue())


def write_reference_summary(reference: str | Path, out: str | Path) -> Path:
    """``SUMMARY.md`` of a reference folder, derived from its run log, its published files and the
    CLAIMS.csv already derived into ``out`` (:data:`dap.report.check.GENERATED` runs the claims first):
    what ran, on which machine and commit, the compute it took, what is not in it yet, the claims'
    headline. Nothing in it is typed by hand.

    Args:
        reference: the reference folder.
        out: the folder the derived files are written to (the reference, or a temporary one).

    Returns:
        The path written.
    """
    from dap.claims.table import headline  # the claims' counts, from the derived CLAIMS.csv

    reference, out = Path(reference), Path(out)
    log_path = reference / "run_log.csv"
    log = pd.read_csv(log_path) if log_path.exists() else pd.DataFrame(columns=["notebook", "seconds"])
    notebooks = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [nb for nb in notebooks if nb not in set(log["notebook"])]
    published = pd.read_csv(reference / PUBLISHED_INDEX) if (reference / PUBLISHED_INDEX).exists() else None
    columns = [c for c in ("notebook", "profile", "status", "seconds", "peak_rss_mb", "commit", "cpu", "device",
                           "precision", "torch", "finished") if c in log]
    lines = ["# Reference results", "",
             "Derived by `python -m dap report` from this folder's run log, rows and published files "
             "(docs/reference.md); `python -m dap report --check` fails if it is edited by hand.", "",
             f"**Notebooks in this reference:** {len(log)} of {len(notebooks)}; compute "
             f"{log['seconds'].sum() / 3600:.2f} h (the runs' wall time: work a run reused from stored fits or "
             f"trained models is not counted again) on {', '.join(sorted(set(log.get('cpu', pd.Series(dtype=str)).dropna()))) or '—'}; "
             f"commits {', '.join(sorted(set(log.get('commit', pd.Series(dtype=str)).dropna().astype(str)))) or '—'}.", ""]
    if len(log):
        lines += [log.sort_values("notebook")[columns].to_markdown(index=False), ""]
    lines += [f"**Not yet in this reference:** {', '.join(missing) if missing else 'none'}.", ""]
    spent = time_spent(reference, log)
    if len(spent):
        lines += ["**Where the time went** (per notebook: its wall time; the time `./run_all.sh --plan` predicted "
                  "for it before the run, and their ratio; the summed wall time of its fits or "
                  "trainings' evaluations as the rows record them, which run in parallel workers, so the sum may "
                  "exceed the wall time; its classical baselines; fits with `seconds` recorded):", "",
                  spent.to_markdown(index=False), ""]
    claims = out / "CLAIMS.csv"
    if claims.exists():
        lines += [f"**Claims** ([CLAIMS.md](CLAIMS.md)): {headline(pd.read_csv(claims))}.", ""]
    if published is not None and len(published):
        lines += ["**Published files**, per notebook:", ""]
        for nb, block in published.groupby("notebook", sort=True):
            lines.append(f"- {nb}: " + ", ".join(f"[{f}]({f})" for f in block["file"]))
        lines.append("")
    return atomic_write_text(out / "SUMMARY.md", "\n".join(lines))


def time_spent(reference: str | Path, log: pd.DataFrame) -> pd.DataFrame:
    """Per notebook of ``log``: wall seconds, fits, their summed seconds and the baselines' (from the rows).

    Args:
        reference: the reference folder (its rows).
        log: its run log (``notebook``, ``seconds``).

    Returns:
        Columns notebook, wall s, predicted s and wall / predicted (the plan printed before the run,
        ``./run_all.sh --plan``; empty where it predicted nothing), fits, fits' summed s, baselines s.
    """
    from dap.claims.table import row_files  # either layout

    out = []
    for rec in log.sort_values("notebook").to_dict("records"):
        per_file = {}
        for path in row_files(reference, rec["notebook"]):
            rows = pd.read_csv(path)
            if "seconds" in rows:
                fits = rows.drop_duplicates("fit_id")
                per_file[path.name.split(".")[0]] = (len(fits), float(fits["seconds"].fillna(0).sum()))
        n, fit_s = per_file.get("rows", (0, 0.0))
        guess = rec.get("predicted_seconds")
        guess = float(guess) if guess is not None and pd.notna(guess) and float(guess) > 0 else None
        out.append({"notebook": rec["notebook"], "wall s": round(float(rec["seconds"]), 1),
                    "predicted s": "" if guess is None else round(guess, 1),
                    "wall / predicted": "" if guess is None else round(float(rec["seconds"]) / guess, 2),
                    "fits": n, "fits' summed s": round(fit_s, 1),
                    "baselines s": round(per_file.get("baselines", (0, 0.0))[1], 1)})
    return pd.DataFrame(out)

