"""The command line: ``python -m dap COMMAND ...`` (``python -m dap --help`` lists the commands).

Errors a user can cause (a bad file, bad options: every :class:`~dap.core.errors.DapError`) end the
command with **one line** on stderr naming the file and the problem, and exit status 1; usage
errors exit with 2, Ctrl-C with 130. No traceback, unless ``DAP_DEBUG=1`` is set. ``compare`` also
exits with 1 when a claim's verdict flips (its last line says so; an error's says ``error:``).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from dap import restore as r
from dap.core.device import PRECISIONS
from dap.core.errors import DapError
from dap.core.text import one_line
from dap.priors import ALL_DESIGNS
from dap.noise import NOISE_KINDS
from dap.config.profiles import PROFILES_ORDER
from dap.claims.table import write_claims
from dap.core.files import results_root

PROG = "python -m dap"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130


class _Usage(Exception):
    """An argparse error, turned into one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit; we want one line
        raise _Usage(f"{self.prog}: {message} (see {self.prog} --help)")


def _restore_help() -> str:
    return textwrap.dedent(f"""\
        Restore your own recording with an untrained deep prior (paper 1): remove noise
        (--task denoise) or fill gaps (--task inpaint --gaps 1.20-1.35,...).

        Any sample rate and channel count: each channel is fitted separately at 16 kHz and
        resampled back, so OUT has IN's rate, channels, length and (where the format allows)
        sample type. Content above 8 kHz is not restored (denoising removes it; inpainting fills
        the gaps below 8 kHz only). Long files are processed in {r.DEFAULT_WINDOW / 16000:.3f}-s windows,
        cross-faded over >= {r.DEFAULT_OVERLAP / 16000:.3f} s; memory stays bounded. Inpainting fits only a
        window around each group of gaps and leaves the rest of the file untouched.

        When to stop (denoising, --selection discrepancy, the default): the prior reproduces the
        signal before the noise, so the fit must stop in between, and there is no clean reference
        to say when. Each window's noise level is estimated from the window itself (white noise:
        a low quantile of the 5.5-7.5 kHz band; coloured noise: minimum statistics per frequency;
        --noise auto picks by the estimate's spectral tilt), which gives the loss a perfect fit
        would have (the noise floor). The fit stops at the first iterate whose loss has fallen to
        {r.DEFAULT_TOLERANCE:g} x that floor (the discrepancy principle), at most --iterations
        (default {r.DEFAULT_MAX_ITERATIONS}); if the cap comes first with the loss still >= {r.KEEP_INPUT_RATIO:g} x
        the floor, the window is left as the input (the prior's output would be worse than it).
        The estimate and the iterations used are printed per window.
        --selection last --iterations {r.DEFAULT_ITERATIONS} is the former fixed budget (it returned
        speech at 12.4 dB input SNR at 9.7 dB: the fit had not finished); --selection ema a moving
        average of that budget. Inpainting always uses a fixed budget ({r.DEFAULT_ITERATIONS}; last or ema).
        docs/stopping.md has the derivation and the measured errors.

        Cost: one fit per window and channel, each up to the cap ({r.DEFAULT_MAX_ITERATIONS} iterations with
        the discrepancy rule, which stops earlier the more noise there is; {r.DEFAULT_ITERATIONS} for a fixed
        budget). Before the first fit, restore times a few iterations of the same prior on one window on
        this machine and prints "estimated time: N min": fits x iterations x the measured rate, where the
        discrepancy rule's stop is predicted from each window's estimated input SNR for the default prior
        (another design, widths, learning rate or tolerance counts the cap: an upper bound); the
        progress bar then shows the rate of the real fits. The speed
        depends on the CPU more than on its cores (native bf16 or not: dap/config/costs.py and
        docs/costs.md). --design conv costs about half as much. Inpainting costs one window per group of
        gaps. A GPU (used when present) is much faster.
        """)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="dap: deep audio priors, reproduced. Commands:",
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rp = sub.add_parser("restore", help="denoise or fill gaps in your own audio file with a deep prior",
                        description=_restore_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("input", metavar="IN", help="audio file to restore (wav, flac, ogg, aiff, ...)")
    rp.add_argument("-o", "--output", metavar="OUT", required=True,
                    help="where to write the result (format from the suffix; written atomically)")
    rp.add_argument("--task", choices=("denoise", "inpaint"), default=r.DEFAULT_TASK,
                    help="denoise (default) or inpaint the --gaps")
    rp.add_argument("--gaps", metavar="S-E[,S-E...]",
                    help="inpainting: the missing spans in seconds, e.g. 1.20-1.35,2.0-2.1")
    rp.add_argument("--design", choices=ALL_DESIGNS, default=r.DEFAULT_DESIGN,
                    help=f"prior design (default {r.DEFAULT_DESIGN}, the paper's proposal)")
    rp.add_argument("--iterations", type=_positive_int, default=None, metavar="N",
                    help=f"discrepancy: the most iterations per window (default {r.DEFAULT_MAX_ITERATIONS}); last / "
                         f"ema and inpainting: the fixed budget per window (default {r.DEFAULT_ITERATIONS})")
    rp.add_argument("--selection", choices=r.BLIND_SELECTIONS, default=r.DEFAULT_SELECTION,
                    help="blind output rule: discrepancy (default: stop when the residual reaches the "
                         "estimated noise level), the last iterate of a fixed budget, or a moving average of it")
    rp.add_argument("--noise", choices=NOISE_KINDS, default="auto",
                    help="noise estimator of the discrepancy rule: auto (default), white, coloured")
    rp.add_argument("--tolerance", type=_positive_float, default=r.DEFAULT_TOLERANCE, metavar="T",
                    help=f"discrepancy: stop when loss <= T x the estimated noise floor (default {r.DEFAULT_TOLERANCE:g})")
    rp.add_argument("--widths", type=_widths, metavar="W0,W1,W2", default=r.DEFAULT_WIDTHS,
                    help="channels per U-Net level (default the paper's 35,70,140; narrower is faster per "
                         "iteration but fits less: docs/stopping.md's time/quality curve)")
    rp.add_argument("--window", type=float, default=r.DEFAULT_WINDOW / 16000, metavar="SECONDS",
                    help=f"fit window (default {r.DEFAULT_WINDOW / 16000:.3f} s; rounded to 16 ms)")
    rp.add_argument("--overlap", type=float, default=r.DEFAULT_OVERLAP / 16000, metavar="SECONDS",
                    help=f"minimum cross-fade between windows (default {r.DEFAULT_OVERLAP / 16000:.3f} s)")
    rp.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto: bf16 autocast where the hardware has native bf16 (default); fp32 (TF32 off); "
                         "bf16; tf32 (CUDA, compute capability >= 8.0)")
    rp.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    rp.add_argument("--seed", type=int, default=0, help="seed of the latent inputs and initialisation")
    rp.add_argument("-q", "--quiet", action="store_true", help="no progress bar or estimate")
    rp.add_argument("--lr", type=float, default=1e-3, help=argparse.SUPPRESS)  # fault injection in tests

    run = sub.add_parser("run", help="execute notebooks into results/ (what run_all.sh does; "
                                     "'run --help' for its options)", add_help=False)
    run.add_argument("args", nargs=argparse.REMAINDER)

    gp = sub.add_parser("grid", help="run the fits of paper-1 notebooks without papermill (GPU nodes, clusters)",
                        description=textwrap.dedent("""\
        Run the fits of paper-1 notebooks outside papermill, into the same result stores and with the
        same fit ids as the notebooks: the notebooks run afterwards (./run_all.sh --profile P NN) only
        build their tables and figures. Resumable: recorded fits are skipped. With --cluster the fits
        run on Dask (local | local-cuda | slurm | tcp://scheduler:port, dap/engine/cluster.py); on a node with
        several GPUs the local worker processes are spread over them (-p workers N)."""),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    gp.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                    help="prefixes or names, e.g. 02 05 (default: every notebook with fits)")
    gp.add_argument("--profile", choices=PROFILES_ORDER, default="quick")
    gp.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override one setting, as run_all.sh -p (repeatable)")
    gp.add_argument("--cluster", default=None, metavar="WHERE",
                    help="run the fits on a Dask cluster: local, local-cuda, slurm or a scheduler address")
    gp.add_argument("--source", choices=("embedded", "real"), default="embedded", help="the data (default embedded)")
    gp.add_argument("--data-root", default=None, metavar="DIR", help="folder of the real corpora (--source real)")
    gp.add_argument("--allow-cpu", action="store_true", help="run the paper profile even without a CUDA GPU")

    co = sub.add_parser("corpus", help="build a generated data set (paper 2: 'corpus wiass'), offline",
                        description="Build the generated corpus of paper 2 (Bach chorales rendered with the "
                                    "FluidR3 soundfont: sung soprano vs the other voices; docs/wiass.md). "
                                    "Deterministic: the same arguments give byte-identical files.")
    co.add_argument("name", choices=("wiass",), help="which corpus (wiass: paper 2's stems)")
    co.add_argument("--out", metavar="DIR", default=None,
                    help="where to build it (default: $DAP_CACHE or ~/.cache/dap, wiass-corpus-<settings hash>)")
    co.add_argument("--fragments", type=_positive_int, default=None, metavar="N",
                    help="fragments in all, split 2000 : 500 : 250 (default 2750, the paper's size)")
    co.add_argument("--seed", type=int, default=0, help="seed of the renderings (the piece split is fixed)")

    cl = sub.add_parser("claims", help="test every claim of both papers on the stored rows: results/CLAIMS.md",
                        description="Evaluate every registered claim of both papers (dap.claims.registry) on the "
                                    "rows.csv files under RESULTS and write CLAIMS.md / CLAIMS.csv (docs/claims.md).")
    cl.add_argument("--results", metavar="DIR", default=None,
                    help="results folder (default: $DAP_RESULTS or results/)")
    cl.add_argument("--profile", choices=PROFILES_ORDER, default=None,
                    help="use the rows of this profile (default: per claim, the largest profile that has rows)")
    cl.add_argument("-o", "--output", metavar="PATH", default=None, help="where to write (default RESULTS/CLAIMS.md)")

    cp = sub.add_parser("compare", help="compare a re-run's rows with the reference's, per claim and table cell",
                        description="Compare the rows of a re-run with the reference's: per claim the verdict in "
                                    "both and the effect's difference, per table cell (mean over clips) the "
                                    "difference and whether it lies within the metric's tolerance "
                                    "(docs/claims.md). Exit status 1 when a verdict flips.")
    cp.add_argument("run_dir", metavar="RUN_DIR", help="the re-run's results folder")
    cp.add_argument("reference_dir", metavar="REFERENCE_DIR", nargs="?", default=None,
                    help="the reference folder (default: results/reference of this repository)")
    cp.add_argument("--profile", choices=PROFILES_ORDER, default=None,
                    help="compare only this profile's rows (default: as 'claims', per claim the largest)")
    cp.add_argument("--out", metavar="FILE", default=None, help="write the markdown table here instead of stdout")
    cp.add_argument("--strict", action="store_true", help="exit 1 also when a cell lies outside its tolerance")

    rep = sub.add_parser("report", help="rewrite a reference folder's files from its rows; --check: are they current?",
                         description="DIR is a reference folder (results/reference: rows/<notebook>/<file>.csv.gz "
                                     "and the files derived from them). Without --check: rewrite every derived file "
                                     "from the rows. --check: change nothing; exit 1 naming the first row without the "
                                     "current code's fingerprint or a precision class, or the first derived file and "
                                     "line that differs from what the rows give now (docs/reference.md).")
    rep.add_argument("folder", metavar="DIR", help="the reference folder")
    rep.add_argument("--check", action="store_true", help="check only: change nothing, exit 1 on the first problem")
    return ap


def _positive(cast, noun: str, bound: str):
    """An argparse type: ``cast(text)`` that must be finite and > 0 (``noun``, ``bound``: the messages)."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not 0 < value < float("inf") or (cast is int and value < 1):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value if cast is int else repr(text)}")
        return value

    return parse


_positive_int = _positive(int, "an integer", "at least 1")
_positive_float = _positive(float, "a number", "a positive number")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 4,8,16, got {text!r}") from None
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected at least two positive widths like 4,8,16, got {text!r}")
    return widths


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status (never raises for a user's mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["run"]:  # everything after 'run' belongs to the runner's own parser
            from dap.runner import main as run_main  # papermill & co.: loaded only for `run`

            return run_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return EXIT_USAGE
        if args.command == "claims":
            return _claims(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "grid":
            return _grid(args)
        if args.command == "report":
            return _report(args)
        if args.command == "corpus":
            from dap.wiass.corpus import command

            return command(args.out, args.fragments, args.seed)
        return _restore(args)
    except _Usage as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except DapError as exc:
        print(f"{PROG} {argv[0] if argv else ''}: error: {one_line(exc)}".replace("  ", " "), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (the output file was not written)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line, the traceback on request
        if os.environ.get("DAP_DEBUG"):
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {one_line(exc)} (set DAP_DEBUG=1 for the "
              f"traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def _grid(args) -> int:
    from dap.core.device import ALLOW_CPU_PAPER, require_gpu_for_paper
    from dap.runner import parse_value
    from dap.studies.plans import run_plans

    overrides = {name: parse_value(value) for name, value in args.param}
    if args.cluster:
        overrides["cluster"] = args.cluster
    if args.allow_cpu:
        os.environ[ALLOW_CPU_PAPER] = "1"
    require_gpu_for_paper(args.profile)  # before any data is loaded
    done = run_plans(args.notebooks, args.profile, overrides, source=args.source, root=args.data_root,
                     progress=lambda line: print(line, flush=True))
    for name, rows in done.items():
        print(f"{PROG} grid: {name}: {rows} rows recorded")
    print(f"{PROG} grid: done; ./run_all.sh --profile {args.profile} {' '.join(n[:2] for n in done)} "
          f"now builds the tables from these rows (same settings, so no fit is repeated)")
    return 0


def _claims(args) -> int:
    path = write_claims(args.results or results_root(), args.output, profile=args.profile)
    print(f"{PROG} claims: wrote {path}")
    return 0


def _compare(args) -> int:
    from dap.claims.compare import REFERENCE_DIR, compare, comparison_markdown
    from dap.core.files import atomic_write_text

    result = compare(args.run_dir, args.reference_dir or REFERENCE_DIR, profile=args.profile)
    text = comparison_markdown(result)
    if args.out:
        print(f"{PROG} compare: wrote {atomic_write_text(args.out, text)}")
        print(result.summary())  # the last line, as without --out
    else:
        print(text, end="")
    return result.exit_status(args.strict)


def _report(args) -> int:
    from dap.report.check import check_reference, regenerate  # pandas and the claims: only for `report`

    if args.check:
        print(f"{PROG} report --check: {check_reference(args.folder)}")
    else:
        print(f"{PROG} report: wrote {', '.join(str(p) for p in regenerate(args.folder))}")
    return 0


def _restore(args) -> int:
    window16 = int(round(args.window * 16000 / 256)) * 256
    overlap16 = int(round(args.overlap * 16000))
    r.check_window(window16, overlap16)
    try:
        if args.task == "inpaint" and not args.gaps:
            raise r.RestoreError("--task inpaint needs --gaps START-END[,START-END...] in seconds")
        gaps = r.parse_gaps(args.gaps) if args.gaps else None
        info = r.scan(args.input)  # the checks restore_file repeats: cheap, and before any estimate
        fits = r.estimate_fits(info, args.task, window16, overlap16, gaps)
    except r.RestoreError as exc:
        raise r.RestoreError(_name(args.input, exc)) from None
    bar = None
    done = {"fits": 0, "iterations": 0, "logged": 0}
    process = None

    def on_step(iteration, info_):
        if bar is not None:
            bar.update(1)

    def progress(n):
        done["fits"] += n
        for k in range(done["logged"], len(process.fits)):  # the fits finished since the last call
            fit = process.fits[k]
            done["iterations"] += fit.iterations
            if bar is not None:
                bar.write(f"restore: fit {k + 1}: {fit.describe()}", file=sys.stderr)
        done["logged"] = len(process.fits)
        if bar is not None:  # early stops, silent or diverged windows: resynchronise
            bar.total = round(done["iterations"] + (fits - done["fits"]) * per_fit)
            bar.n = done["iterations"]
            bar.refresh()

    process = r.WindowPrior(design=args.design, iterations=args.iterations, selection=args.selection,
                            widths=args.widths, precision=args.precision, device=args.device, lr=args.lr,
                            on_step=on_step, noise=args.noise, tolerance=args.tolerance)
    cap = process.max_iterations(args.task)
    per_fit = cap  # iterations a fit not yet run is expected to take (the bar's total)
    if not args.quiet:
        text, estimate = _estimate(info, fits, args, process, window16, overlap16)
        print(text, file=sys.stderr, flush=True)
        per_fit = estimate.iterations
        from tqdm.std import tqdm

        bar = tqdm(total=round(fits * per_fit), desc="restore", unit="it", file=sys.stderr, mininterval=1.0,
                   dynamic_ncols=True)
    try:
        report = r.restore_file(args.input, args.output, task=args.task, gaps=gaps, process=process,
                                window16=window16, overlap16=overlap16, seed=args.seed,
                                progress=progress)
    except r.RestoreError as exc:
        raise r.RestoreError(_name(args.input, exc)) from None
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        used = [f.iterations for f in process.fits]
        if used:
            kept = sum(f.kept_input for f in process.fits)
            print(f"restore: iterations per fit: {', '.join(map(str, used))} (rule {process.rule(args.task)}, "
                  f"cap {cap})" + (f"; {kept} window(s) left as the input (the floor was far from reached)"
                                   if kept else ""), file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    for line in report.failed:
        print(f"{PROG} restore: warning: {args.input}: fit of {line}", file=sys.stderr)
    return 0


def _estimate(info, fits: int, args, process, window16: int, overlap16: int):
    """The lines printed before the first fit (what will be fitted, then the time measured on this
    machine for it, :mod:`dap.restore.estimate`) and the :class:`~dap.restore.estimate.Estimate`."""
    from dap.core.device import device_name
    from dap.restore.estimate import measure_estimate, stop_is_modelled, window_snrs

    rule = process.rule(args.task)
    cap = process.max_iterations(args.task)
    what = (f"at most {cap} iterations each, stopping when the residual reaches the estimated noise floor"
            if rule == "discrepancy" else f"{cap} iterations each ({rule})")
    text = (f"restore: {info.path} ({info.seconds:.2f} s, {info.channels} channel(s), {info.sr} Hz): "
            f"{fits} fit(s) of {what} ({args.design})")
    longest = min(window16, r.fit_length(int(round(info.seconds * r.FIT_SR))))  # a short file is one short window
    snrs = window_snrs(info, window16, overlap16, process.noise) if stop_is_modelled(process, args.task) else None
    estimate = measure_estimate(fits, cap, args.design, args.widths, args.precision, args.device, longest, snrs)
    device = args.device or ("cuda" if _cuda() else "cpu")
    return text + "\n" + estimate.line(rule == "discrepancy", device_name(device)), estimate


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _name(path, exc) -> str:
    """The message of ``exc``, starting with the input's name when it does not already say it."""
    msg = one_line(exc)
    return msg if str(path) in msg else f"{path}: {msg}"


