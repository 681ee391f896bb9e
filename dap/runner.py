"""Execute the notebooks with papermill, one fresh kernel each, and summarise.

Used by ``run_all.sh``; also ``python -m dap.runner --profile smoke 02 03``.

Every notebook runs in its own subprocess with a timeout. Its executed copy goes to a temporary
name and is renamed to ``results/<name>/<name>.ipynb`` only on success, so a partial notebook
never counts as done. Wall time, peak memory (max RSS of the papermill process tree) and the
outcome of each notebook are appended to ``results/run_log.csv``; every failure is gathered and
reported at the end, with a non-zero exit status. At the end, ``results/SUMMARY.md`` gathers the
tables and ``results/CLAIMS.md`` tests every claim of both papers on the rows (:mod:`dap.claims`).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dap.claims import write_claims
from dap.profiles import PROFILES_ORDER
from dap.report import write_summary
from dap.results import atomic_write_text, git_commit, machine_description, results_root

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


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


def run_notebook(path: Path, profile: str, params: dict, timeout: int, log_dir: Path) -> dict:
    """Run one notebook in a subprocess; return its run-log record."""
    name = path.stem
    out_dir = results_root() / name
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.ipynb"
    partial = out_dir / f".{name}.partial.ipynb"
    log = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "papermill", str(path), str(partial), "--cwd", str(NOTEBOOKS),
           "-p", "profile", profile, "--execution-timeout", str(timeout), "--no-progress-bar",
           "--log-output"]
    for key, value in params.items():
        cmd += ["-p", key, str(value)]  # papermill types the value (int, float, bool, None, str)
    env = dict(os.environ, DAP_RESULTS=str(results_root()), PYTHONUNBUFFERED="1", DAP_PROGRESS="text")
    start = time.time()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
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
            "error": error, "log": str(log.relative_to(results_root())),
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def _die_with_parent() -> None:
    """In the papermill child (Linux): get SIGKILL when the runner dies, however it dies.

    Without it, killing the runner alone (SIGTERM from a CI timeout, ``kill``) would leave papermill
    and its kernel fitting and writing rows for nobody, racing the next run. The kernel, which
    jupyter starts in its own session, exits when papermill is gone (ipykernel's parent poller),
    and the fit workers exit when the kernel is gone (dap.experiments._exit_with_parent).
    """
    import ctypes
    import signal

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
    ap.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per cell (default 4 h)")
    ap.add_argument("--list", action="store_true", help="list the notebooks and exit")
    args = ap.parse_args(argv)

    books = list_notebooks(args.notebooks)
    if args.list:
        print("\n".join(b.stem for b in books))
        return 0
    params = {k: _parse_value(v) for k, v in args.param}
    root = results_root()
    log_dir = root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"run_all: profile={args.profile}, {len(books)} notebook(s), results in {root}", flush=True)
    records = []
    t0 = time.time()
    for book in books:
        print(f"  - {book.stem} ...", end=" ", flush=True)
        rec = run_notebook(book, args.profile, params, args.timeout, log_dir)
        records.append(rec)
        print(f"{rec['status']} in {rec['seconds']:.0f} s, peak {rec['peak_rss_mb']:.0f} MB", flush=True)
        _append_run_log(root, rec)
    total = time.time() - t0
    run_log = pd.DataFrame(records)
    header = (f"Profile `{args.profile}`; {machine_description()}; commit {git_commit()}; "
              f"wall time {total / 60:.1f} min for {len(books)} notebook(s); "
              f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Every claim of both papers, tested on "
              f"these rows: [CLAIMS.md](CLAIMS.md).")
    write_summary(root, run_log, header)
    claims = write_claims(root, profile=args.profile)  # every claim; those whose notebooks did not run say so
    failed = [r for r in records if r["status"] != "ok"]
    print(f"run_all: {len(records) - len(failed)} ok, {len(failed)} failed, {total / 60:.1f} min; "
          f"summary: {root / 'SUMMARY.md'}; claims: {claims}")
    for r in failed:
        print(f"FAILED {r['notebook']}: {r['error']}  (log: {root / r['log']})")
    return 1 if failed else 0


def _append_run_log(root: Path, rec: dict) -> None:
    path = root / "run_log.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    new = pd.concat([old, pd.DataFrame([rec])], ignore_index=True)
    buf = io.StringIO()
    new.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def _parse_value(text: str):
    """papermill-style typing of a command-line override: int, float, bool, None or str."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


if __name__ == "__main__":
    sys.exit(main())
