"""Execute the notebooks with papermill, one fresh kernel each, and summarise.

Used by ``run_all.sh``; also ``python -m dap.runner --profile smoke 02 03``.

Every notebook runs in its own subprocess, with a cell timeout (none by default for ``paper``,
whose tables are single cells of hours). The ``paper`` profile stops at once on a machine without
a usable CUDA GPU (:func:`dap.core.device.require_gpu_for_paper`; ``--allow-cpu`` to run it anyway).
While a notebook runs, the grid's progress (``.progress.json``, :mod:`dap.engine.progress`) is printed
on the terminal every ``--progress-every`` seconds when it changed. Its executed copy goes to a temporary
name and is renamed to ``results/<name>/<name>.ipynb`` only on success, so a partial notebook
never counts as done. Wall time, peak memory (max RSS of the papermill process tree) and the
outcome of each notebook are appended to ``results/run_log.csv``; every failure is gathered and
reported at the end, with a non-zero exit status. At the end, ``results/SUMMARY.md`` gathers the
tables and ``results/CLAIMS.md`` tests every claim of both papers on the rows (:mod:`dap.claims`).

Before a run, and alone with ``--plan`` (nothing runs), the predicted minutes of each notebook on this
machine are printed (:mod:`dap.config.plan`: a short probe of this machine, :mod:`dap.tasks.probe`,
cached; ``--reprobe`` measures again; docs/costs.md); after each notebook its real time is printed
beside its predicted time.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import difflib
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pandas as pd

from dap.claims.table import write_claims
from dap.core.device import (ALLOW_CPU_PAPER, cpu_model, device_name, require_gpu_for_paper,
                             resolve_precision)
from dap.core.errors import DapError
from dap.core.text import one_line
from dap.config.plan import Machine, plan_lines, predict, probe_specs
from dap.config.profiles import PROFILES_ORDER, SETTINGS, settings_class
from dap.engine.progress import progress_line, read_progress
from dap.report.check import regenerate
from dap.report.reference import add_to_reference, seed_run
from dap.report.tables import write_summary
from dap.core.files import atomic_write_text, results_root
from dap.core.provenance import git_commit, machine_description

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
#: Cell timeout per profile in seconds (None: no timeout). A paper table is one cell of many hours.
DEFAULT_TIMEOUT = {"smoke": 4 * 3600, "quick": 4 * 3600, "paper": None}


def list_notebooks(selection: list[str] | None = None) -> list[Path]:
    """Notebooks ``NN_*.ipynb`` in order; ``selection`` items match a prefix (``02``) or a name."""
    books = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return books
    chosen = []
    for item in selection:
        item = Path(item).stem
        hits = [b for b in books if b.stem == item or b.stem.startswith(item)]
        if not hits:
            raise SystemExit(f"run_all: no notebook matches {item!r}; notebooks: {', '.join(b.stem for b in books)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def notebook_parameters(path: Path) -> set[str]:
    """What ``-p NAME VALUE`` may name for the notebook at ``path``: the names its ``parameters``
    cell assigns (``source``, ``data_root``, ...) and every setting of its class in
    :data:`dap.config.profiles.SETTINGS` (the notebook reads them all: ``profiles.from_parameters``)."""
    nb = json.loads(path.read_text())
    names: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            names |= {t.id for node in tree.body if isinstance(node, ast.Assign)
                      for t in node.targets if isinstance(t, ast.Name)}
    if path.stem in SETTINGS:
        names |= set(settings_class(path.stem).names())
    return names - {"profile"}


def check_params(books: list[Path], params: dict) -> None:
    """Stop (SystemExit, one line) on a ``-p`` name that none of ``books`` has, naming the closest
    valid one: papermill would only warn, and the run would silently ignore it."""
    known = set().union(*(notebook_parameters(b) for b in books)) if books else set()
    for name in params:
        if name == "profile":
            raise SystemExit("run_all: the profile is chosen with --profile, not -p profile")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SystemExit(f"run_all: no selected notebook has a parameter {name!r}{hint}; "
                             f"parameters: {', '.join(sorted(known))}")


def run_notebook(path: Path, profile: str, params: dict, timeout: int | None, log_dir: Path,
                 progress_every: float = 30.0, show=print) -> dict:
    """Run one notebook in a subprocess; return its run-log record.

    timeout: seconds per cell, None (or <= 0) for none. Every ``progress_every`` seconds (0: never)
    the newest grid progress under ``results/`` that changed since the last line is passed to
    ``show`` as one line.
    """
    name = path.stem
    out_dir = results_root() / name
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.ipynb"
    partial = out_dir / f".{name}.partial.ipynb"
    log = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "papermill", str(path), str(partial), "--cwd", str(NOTEBOOKS),
           "-p", "profile", profile, "--no-progress-bar", "--log-output"]
    if timeout and timeout > 0:
        cmd += ["--execution-timeout", str(timeout)]
    for key, value in params.items():
        cmd += ["-p", key, str(value)]  # papermill types the value (int, float, bool, None, str)
    env = dict(os.environ, DAP_RESULTS=str(results_root()), PYTHONUNBUFFERED="1", DAP_PROGRESS="text")
    start = time.time()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            status, usage = _wait_showing_progress(proc, start, progress_every, show)
            rc = os.waitstatus_to_exitcode(status)
        except KeyboardInterrupt:
            proc.kill()
            raise
    seconds = time.time() - start
    if rc == 0:
        os.replace(partial, final)
        error = ""
    else:
        if partial.exists():
            os.replace(partial, out_dir / f"{name}.failed.ipynb")
        error = _last_error(log)
    return {"notebook": name, "profile": profile, "status": "ok" if rc == 0 else "failed",
            "seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            **run_provenance(params.get("precision") or "auto", "precision" in notebook_parameters(path)),
            "error": error, "log": str(log.relative_to(results_root())),
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def run_provenance(precision: str = "auto", has_precision: bool = True) -> dict:
    """What decides a run's numbers beside its settings, for the run log: the commit, the device
    (a CPU's model and the flags that decide precision), the precision fits resolve to there (fp32
    for a notebook without a ``precision`` setting: paper 2 trains without autocast), torch."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"commit": git_commit(), "cpu": cpu_model(), "device": device_name(device),
            "precision": resolve_precision(precision, device) if has_precision else "fp32",
            "torch": torch.__version__}


def _wait_showing_progress(proc, start: float, every: float, show) -> tuple[int, object]:
    """Wait for ``proc`` (``os.wait4``: its resource usage), showing grid progress meanwhile."""
    if not every or every <= 0:
        _, status, usage = os.wait4(proc.pid, 0)
        return status, usage
    last_shown = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage
        states = read_progress(results_root(), since=start)
        if states:
            state = states[-1]
            key = (state["task"], state["done"], state["total"], state.get("current"), state["started"])
            if key != last_shown:
                show(f"      {progress_line(state, now=time.time())}")
                last_shown = key
        _sleep_until_exit(proc, every)


def _sleep_until_exit(proc, seconds: float) -> None:
    """Sleep ``seconds`` or until ``proc`` exits, whichever comes first (without reaping it)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        time.sleep(min(0.2, max(0.0, deadline - time.time())))


def _die_with_parent() -> None:
    """In the papermill child (Linux): get SIGKILL when the runner dies, however it dies.

    Without it, killing the runner alone (SIGTERM from a CI timeout, ``kill``) would leave papermill
    and its kernel fitting and writing rows for nobody, racing the next run. The kernel, which
    jupyter starts in its own session, exits when papermill is gone (ipykernel's parent poller),
    and the fit workers exit when the kernel is gone (dap.engine.grid._exit_with_parent).
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _last_error(log: Path) -> str:
    """The most informative line of a failed run's log (the exception line)."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_all.sh", description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="prefixes or names (default: all, in order)")
    ap.add_argument("--profile", default="quick", choices=PROFILES_ORDER)
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override one notebook parameter (repeatable)")
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds per cell, 0 for none (default: 4 h; none for the paper profile)")
    ap.add_argument("--allow-cpu", action="store_true",
                    help=f"run the paper profile even without a CUDA GPU (weeks; same as {ALLOW_CPU_PAPER}=1)")
    ap.add_argument("--progress-every", type=float, default=30.0,
                    help="seconds between progress lines of a running grid (0: none; default 30)")
    ap.add_argument("--reference", metavar="DIR", default=None,
                    help="extend this reference folder (results/reference): reuse its valid rows, compute the "
                         "missing ones, put each finished notebook's rows and files back (docs/reference.md)")
    ap.add_argument("--audit", type=float, metavar="MINUTES", default=None,
                    help="re-fit a random sample of the reference's fits that this machine finishes in MINUTES "
                         "and compare each with its committed rows (docs/reference.md); runs no notebook")
    ap.add_argument("--list", action="store_true", help="list the notebooks and exit")
    ap.add_argument("--plan", action="store_true",
                    help="print the predicted minutes of each notebook on this machine and exit (runs no notebook; "
                         "the first time it times a few fit iterations per design, then uses the cache)")
    ap.add_argument("--reprobe", action="store_true", help="measure this machine again instead of using the cached probe")
    ap.add_argument("--no-plan", action="store_true", help="start the run without printing the plan first")
    args = ap.parse_args(argv)

    if args.audit is not None:
        from dap.report.audit import audit  # the studies: only for an audit

        reference = args.reference or REPO / "results" / "reference"
        try:
            return audit(reference, args.audit, results_root() / "audit", reprobe=args.reprobe,
                         show=lambda line: print(line, flush=True))
        except DapError as exc:
            print(f"run_all: --audit: {one_line(exc)}", file=sys.stderr)
            return 2
    if args.reference and not Path(args.reference).is_dir():
        print(f"run_all: --reference {args.reference}: not a folder (create it to start a new reference)", file=sys.stderr)
        return 2
    books = list_notebooks(args.notebooks)
    if args.list:
        print("\n".join(b.stem for b in books))
        return 0
    params = {k: parse_value(v) for k, v in args.param}
    check_params(books, params)
    if args.allow_cpu:
        os.environ[ALLOW_CPU_PAPER] = "1"  # the notebooks' kernels inherit it
    if args.plan:
        try:
            require_gpu_for_paper(args.profile)
        except DapError as exc:  # a plan runs nothing: say it, predict anyway
            print(f"run_all: note: {one_line(exc)}", flush=True)
        try:
            print_plan(books, args.profile, params, args.reprobe)
        except DapError as exc:
            print(f"run_all: {one_line(exc)}", file=sys.stderr)
            return 2
        return 0
    try:
        require_gpu_for_paper(args.profile)
    except DapError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    predicted = {}
    if not args.no_plan:
        try:
            predicted = print_plan(books, args.profile, params, args.reprobe)
        except (DapError, RuntimeError, OSError) as exc:  # a plan must never stop a run
            print(f"run_all: no plan ({one_line(exc)}); running anyway", flush=True)
    timeout = DEFAULT_TIMEOUT[args.profile] if args.timeout is None else args.timeout
    root = results_root()
    log_dir = root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"run_all: profile={args.profile}, {len(books)} notebook(s), results in {root}", flush=True)
    records = []
    t0 = time.time()
    for book in books:
        print(f"  - {book.stem} ...", flush=True)
        if args.reference:
            print(f"    {seed_run(args.reference, root, book.stem)} rows from {args.reference}", flush=True)
        rec = run_notebook(book, args.profile, params, timeout, log_dir, args.progress_every,
                           show=lambda line: print(line, flush=True))
        guess = predicted.get(book.stem)
        rec["predicted_seconds"] = None if guess is None else round(guess, 1)  # the plan, checked in SUMMARY
        records.append(rec)
        print(f"    {book.stem}: {rec['status']} in {rec['seconds']:.0f} s"
              + (f" (predicted {guess:.0f} s)" if guess is not None else "")
              + f", peak {rec['peak_rss_mb']:.0f} MB", flush=True)
        _append_run_log(root, rec)
        if args.reference and rec["status"] == "ok":
            try:
                add_to_reference(root, args.reference, book.stem, rec)
            except DapError as exc:  # the run's own folder keeps everything: say why, go on
                print(f"run_all: {book.stem} not added to {args.reference}: {one_line(exc)}", flush=True)
    total = time.time() - t0
    run_log = pd.DataFrame(records)
    header = (f"Profile `{args.profile}`; {machine_description()}; commit {git_commit()}; "
              f"wall time {total / 60:.1f} min for {len(books)} notebook(s); "
              f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Every claim of both papers, tested on "
              f"these rows: [CLAIMS.md](CLAIMS.md).")
    write_summary(root, run_log, header)
    claims = write_claims(root, profile=args.profile)  # every claim; those whose notebooks did not run say so
    if args.reference:
        regenerate(args.reference)  # CLAIMS.md of the reference, from all its rows
    failed = [r for r in records if r["status"] != "ok"]
    print(f"run_all: {len(records) - len(failed)} ok, {len(failed)} failed, {total / 60:.1f} min; "
          f"summary: {root / 'SUMMARY.md'}; claims: {claims}")
    for r in failed:
        print(f"FAILED {r['notebook']}: {r['error']}  (log: {root / r['log']})")
    return 1 if failed else 0


def print_plan(books: list[Path], profile: str, params: dict, reprobe: bool = False) -> dict[str, float | None]:
    """Print the predicted minutes of each of ``books`` on this machine (:mod:`dap.config.plan`), its
    speeds measured by :func:`dap.tasks.probe.measure` (cached per machine and code).

    Args:
        books: the notebooks, in run order; profile: smoke | quick | paper; params: ``-p`` overrides.
        reprobe: measure this machine again instead of using the cache.

    Returns:
        ``{notebook: predicted seconds or None}``.
    """
    import torch

    from dap.tasks.probe import measure  # torch and the fit path: only when a plan is asked for

    from dap.studies.common import fit_workers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = [b.stem for b in books]
    machine = Machine(partial(resolve_precision, device=device), fit_workers,
                      0 if device == "cuda" else os.cpu_count() or 1)
    speeds = measure(probe_specs(names, profile, params, machine), reprobe=reprobe, device=device,
                     show=lambda line: print(f"run_all: {line}", flush=True))
    plans = predict(names, profile, speeds, params, machine)
    source = f"{speeds.probed} probed now" if speeds.probed else "from the cache; --reprobe measures again"
    print(f"run_all: plan for profile {profile} on {machine_description()}: speeds measured {speeds.measured} "
          f"({source}); assumes no fit is stored yet (docs/costs.md)", flush=True)
    print("\n".join(plan_lines(plans)), flush=True)
    return {p.notebook: p.seconds for p in plans}


def _append_run_log(root: Path, rec: dict) -> None:
    path = root / "run_log.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    new = pd.concat([old, pd.DataFrame([rec])], ignore_index=True)
    buf = io.StringIO()
    new.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def parse_value(text: str):
    """papermill-style typing of a command-line override: int, float, bool, None or str."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


if __name__ == "__main__":
    sys.exit(main())
