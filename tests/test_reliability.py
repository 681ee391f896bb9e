"""Reliability (issue 9): interruption, bad input, numerical faults, determinism.

* **Interruption**: ``run_all.sh --profile smoke 04`` (8 fits) is killed with SIGKILL (the whole
  process group) at seeded random moments, rerun each time, and must end with exactly the rows of an
  uninterrupted run; after every kill no half-written file may exist and no process of the run may
  outlive it (the kernel and fit workers are in other sessions). A spawn pool whose parent is
  killed must not leave orphaned workers.
* **Bad input**: a table of cases through ``python -m dap restore``, the loaders (dap.core.audio,
  dap.data) and the notebooks' data path: each works (asserted) or fails with one line naming the
  file and the problem, a non-zero exit status and no traceback.
* **Faults**: NaN / exploding fits, a fit that raises, and a fit that kills its worker process are
  recorded as failed with their reason, and the rest of the grid completes.
* **Determinism**: the same seed gives identical rows (a smoke grid, run twice).

The tests assert; they write nothing. With ``DAP_RELIABILITY_LOG`` set they also append what they
tried to that file (one JSON object per line), from which ``benchmarks/reliability_report.py``
(which runs this whole module) writes ``results/reliability.md``;
``results/reference/reliability.md`` is a committed copy.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from dap import cli
from dap.core.errors import AudioError, DapError

REPO = Path(__file__).resolve().parent.parent
TINY = ["--widths", "4,8,16", "--iterations", "1", "--design", "conv", "--precision", "fp32", "--device", "cpu",
        "-q"]

#: Where tried cases are logged for benchmarks/reliability_report.py (unset: nothing is written).
LOG_ENV = "DAP_RELIABILITY_LOG"


def log_case(kind: str, row: dict) -> None:
    """Append ``row`` under ``kind`` (bad_input, interruption, faults, determinism, memory) to the
    file named by ``$DAP_RELIABILITY_LOG``, if set."""
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"kind": kind, **row}, default=str) + "\n")


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny fits on a shared 2-core machine: thread hand-offs cost more than they give
    yield
    torch.set_num_threads(before)


# ============================================================================= bad input
def _tone(sr, seconds, channels=1, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([amp * np.sin(2 * np.pi * (220 + 70 * c) * t) for c in range(channels)], axis=1)


def _wav(path, x, sr=16000, subtype="PCM_16"):
    sf.write(path, x, sr, subtype=subtype)
    return path


def _bytes(path, data: bytes):
    Path(path).write_bytes(data)
    return path


def _truncated(path, fmt, fraction):
    sf.write(path, _tone(16000, 1.0), 16000, format=fmt)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return path


def _nan(path, value):
    x = _tone(16000, 0.5)
    x[1234, 0] = value
    return _wav(path, x, subtype="FLOAT")


def _clipped(path):
    x = np.clip(3 * _tone(16000, 0.6, amp=1.0), -1, 1)  # a square-ish wave at full scale
    return _wav(path, x)


def _long(path, minutes=30.0, sr=16000):
    """A long PCM_16 file written block by block (memory: one block)."""
    n = int(minutes * 60 * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        rng = np.random.default_rng(0)
        for start in range(0, n, 1 << 20):
            k = min(1 << 20, n - start)
            t = (start + np.arange(k)) / sr
            f.write(0.3 * np.sin(2 * np.pi * 200 * t) + 0.05 * rng.standard_normal(k))
    return path


# name -> (make(tmp) -> input path, expectation, what it checks)
#   expectation: ("works", {expected output properties}) or ("error", text the one-line message must hold)
FILE_CASES = {
    "zero-length .wav": (lambda d: _bytes(d / "empty.wav", b""), ("error", "empty (0 bytes)")),
    "header-only WAV": (lambda d: _wav(d / "header.wav", np.zeros((0, 1))), ("error", "holds no samples")),
    "truncated WAV (60 %)": (lambda d: _truncated(d / "trunc.wav", "WAV", 0.6), ("works", {"sr": 16000})),
    "truncated FLAC (50 %)": (lambda d: _truncated(d / "trunc.flac", "FLAC", 0.5), ("error", "cannot be read as audio")),
    "text file named .wav": (lambda d: _bytes(d / "text.wav", b"RIFF? no, just text\n"),
                             ("error", "cannot be read as audio")),
    "NaN samples": (lambda d: _nan(d / "nan.wav", np.nan), ("error", "NaN or Inf samples (first at 0.077 s, channel 1)")),
    "Inf samples": (lambda d: _nan(d / "inf.wav", np.inf), ("error", "NaN or Inf")),
    "all-zero audio": (lambda d: _wav(d / "zeros.wav", np.zeros((8000, 1))), ("error", "silent")),
    "DC only": (lambda d: _wav(d / "dc.wav", np.full((8000, 1), 0.25)), ("works", {"sr": 16000})),
    "a single sample": (lambda d: _wav(d / "one.wav", np.array([[0.5]])), ("error", "too short to restore: 1 sample")),
    "8 channels": (lambda d: _wav(d / "ch8.wav", _tone(16000, 0.4, 8)), ("works", {"channels": 8})),
    "8 kHz": (lambda d: _wav(d / "sr8k.wav", _tone(8000, 0.6), 8000), ("works", {"sr": 8000})),
    "96 kHz": (lambda d: _wav(d / "sr96k.wav", _tone(96000, 0.5), 96000, "PCM_24"), ("works", {"sr": 96000})),
    "float64 WAV": (lambda d: _wav(d / "f64.wav", _tone(16000, 0.5), subtype="DOUBLE"), ("works", {"subtype": "DOUBLE"})),
    "24-bit FLAC": (lambda d: _wav(d / "b24.flac", _tone(16000, 0.5), subtype="PCM_24"), ("works", {"subtype": "PCM_24"})),
    "clipping-level amplitude (full-scale square)": (lambda d: _clipped(d / "clip.wav"), ("works", {"peak_max": 1.0})),
    "float WAV above full scale (peak 4)": (lambda d: _wav(d / "hot.wav", 8 * _tone(16000, 0.5), subtype="FLOAT"),
                                            ("works", {"subtype": "FLOAT", "peak_max": 4.0})),
    "stereo with a silent channel": (lambda d: _wav(d / "half.wav", np.c_[_tone(16000, 0.5), np.zeros(8000)]),
                                     ("works", {"silent_channel": 1})),
    "non-existent path": (lambda d: d / "no" / "such.wav", ("error", "such.wav: no such file")),
    "a directory as input": (lambda d: d, ("error", "is a directory")),
}


def _check_works(src: Path, out: Path, want: dict) -> str:
    info_in, info = sf.info(str(src)), sf.info(str(out))
    x = sf.read(src, always_2d=True)[0]
    y = sf.read(out, always_2d=True)[0]
    assert (info.samplerate, info.channels) == (info_in.samplerate, info_in.channels)
    assert y.shape == x.shape, (y.shape, x.shape)  # the frames that could be read, all of them
    assert np.isfinite(y).all()
    assert info.subtype == want.get("subtype", info_in.subtype)
    # the prior's output is clipped to each channel's input peak at 16 kHz; resampling back may
    # overshoot a little; PCM output is clipped to full scale
    bound = want.get("peak_max", np.abs(x).max() * (1.0 if info.samplerate == 16000 else 1.2))
    assert np.abs(y).max() <= bound + 1e-6
    if "silent_channel" in want:
        assert not y[:, want["silent_channel"]].any()
    if "sr" in want:
        assert info.samplerate == want["sr"]
    if "channels" in want:
        assert info.channels == want["channels"]
    return (f"output {info.samplerate} Hz, {info.channels} ch, {info.frames} frames, {info.subtype}, "
            f"finite, peak {np.abs(y).max():.3f}")


def _record(entry: str, case: str, outcome: str, detail: str, status="") -> None:
    detail = re.sub(r"/\S*?/pytest-\d+/", "<tmp>/", detail)  # pytest's temporary folders, shortened
    log_case("bad_input", {"entry": entry, "case": case, "outcome": outcome, "exit": status,
                                "detail": detail.replace("|", "/")})


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_input_through_restore_and_the_loader(case, tmp_path, capsys, one_thread):
    make, (kind, want) = FILE_CASES[case]
    src = make(tmp_path)
    out = tmp_path / "out" / f"restored{Path(src).suffix or '.wav'}"
    rc = cli.main(["restore", str(src), "-o", str(out), *TINY])
    err = capsys.readouterr().err
    if kind == "works":
        assert rc == 0, err
        detail = _check_works(Path(src), out, want)
        _record("dap restore (cli.main)", case, "works", detail, rc)
    else:
        line = _one_line_error(err)
        assert rc == cli.EXIT_ERROR and want in line and str(src) in line, line
        assert not out.exists()
        _record("dap restore (cli.main)", case, "clear error", line, rc)

    # the same file through the loader every notebook uses (dap.core.audio.load_audio)
    from dap.core.audio import load_audio

    try:
        y = load_audio(src)
    except AudioError as exc:
        msg = str(exc)
        assert "\n" not in msg and str(src) in msg
        _record("dap.core.audio.load_audio", case, "clear error", msg)
    else:
        assert y.dtype == np.float32 and y.size > 0 and np.isfinite(y).all()
        _record("dap.core.audio.load_audio", case, "works", f"{y.size} samples at 16 kHz, finite")


def _output_cases(tmp: Path):
    src = _wav(tmp / "in.wav", _tone(16000, 0.5))
    blocker = tmp / "a_file"
    blocker.write_text("x")
    (tmp / "outdir").mkdir()
    return [
        ("unwritable output (parent is a file)", [str(src), "-o", str(blocker / "out.wav")], "a_file/out.wav: cannot write the output:"),
        ("output path is a directory", [str(src), "-o", str(tmp / "outdir")], "is a directory"),
        ("unknown output format", [str(src), "-o", str(tmp / "out.xyz")], "cannot write this format"),
        ("inpainting gap after the end", [str(src), "-o", str(tmp / "o.wav"), "--task", "inpaint", "--gaps", "0.4-0.7"],
         "ends after the end of the file"),
        ("malformed --gaps", [str(src), "-o", str(tmp / "o.wav"), "--task", "inpaint", "--gaps", "1,2"],
         "in.wav: cannot read gap '1'"),
    ]


def test_bad_output_paths_and_options(tmp_path, capsys):
    for case, argv, want in _output_cases(tmp_path):
        rc = cli.main(["restore", *argv, *TINY])
        line = _one_line_error(capsys.readouterr().err)
        assert rc == cli.EXIT_ERROR and want in line, (case, line)
        _record("dap restore (cli.main)", case, "clear error", line, rc)
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))  # no temporary left behind


def test_bad_input_in_a_real_process(tmp_path):
    """The same contract for the real ``python -m dap restore``: exit status 1, one line, no traceback."""
    cases = {"text file named .wav": FILE_CASES["text file named .wav"][0](tmp_path),
             "NaN samples": FILE_CASES["NaN samples"][0](tmp_path)}
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    for case, src in cases.items():
        proc = subprocess.run([sys.executable, "-m", "dap", "restore", str(src), "-o", str(tmp_path / "o.wav"), "-q"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        line = _one_line_error(proc.stderr)
        assert proc.returncode == 1 and str(src) in line, proc.stderr
        _record("python -m dap restore (subprocess)", case, "clear error", line, proc.returncode)


# ----------------------------------------------------------------------------- data sets
def _copy_embedded(tmp: Path, split: str = "digits_1s") -> Path:
    from dap.data.embedded import EMBEDDED_ROOT

    root = tmp / "embedded"
    root.mkdir(parents=True)
    shutil.copy(EMBEDDED_ROOT / "manifest.csv", root / "manifest.csv")
    shutil.copytree(EMBEDDED_ROOT / split, root / split)
    return root


def _dataset_cases(tmp: Path):
    from dap.data import load_clips
    from dap.data.embedded import load_split
    from dap.studies.common import load_normalised

    def sha_mismatch():
        root = _copy_embedded(tmp / "sha")
        victim = sorted((root / "digits_1s").glob("*.flac"))[0]
        data = bytearray(victim.read_bytes())
        data[-100] ^= 0xFF
        victim.write_bytes(bytes(data))
        load_split("digits", n=None, root=root)

    def manifest_missing():
        root = _copy_embedded(tmp / "nomani")
        (root / "manifest.csv").unlink()
        load_split("digits", root=root)

    def manifest_malformed():
        root = _copy_embedded(tmp / "badmani")
        df = pd.read_csv(root / "manifest.csv").drop(columns=["sha256"])
        df.to_csv(root / "manifest.csv", index=False)
        load_split("digits", root=root)

    def real_missing_root():
        load_clips("speech", n=1, source="real", root=tmp / "no_such_root")

    def real_no_root(monkeypatch_env=os.environ):
        old = os.environ.pop("DAP_DATA", None)
        try:
            load_clips("digits", n=1, source="real")
        finally:
            if old is not None:
                os.environ["DAP_DATA"] = old

    def real_malformed_tree():
        root = tmp / "real1"
        (root / "LJSpeech-1.1").mkdir(parents=True)
        (root / "LJSpeech-1.1" / "metadata.csv").write_text("")
        load_clips("speech", n=1, source="real", root=root)

    def real_corrupt_file():
        root = tmp / "real2"
        (root / "drums" / "train").mkdir(parents=True)
        (root / "drums" / "train" / "kick.wav").write_text("not audio")
        load_clips("drums", n=1, source="real", root=root)

    def real_too_few():
        root = tmp / "real3"
        (root / "drums" / "test").mkdir(parents=True)
        _wav(root / "drums" / "test" / "one.wav", _tone(16000, 1.0))
        load_clips("drums", n=3, source="real", root=root)

    def notebook_too_many_clips():
        load_normalised("digits", 100000, 0, "embedded")  # what the notebooks call (dap.studies)

    def notebook_unknown_dataset():
        load_normalised("podcasts", 1, 0, "embedded")

    return [
        ("embedded clip whose sha256 does not match", sha_mismatch, "sha256 mismatch"),
        ("embedded manifest missing", manifest_missing, "manifest is missing"),
        ("embedded manifest malformed (no sha256 column)", manifest_malformed, "missing column(s) sha256"),
        ("real data root does not exist", real_missing_root, "does not exist"),
        ("real data without root or DAP_DATA", real_no_root, "no data root given"),
        ("real tree malformed (LJSpeech-1.1 without wavs/)", real_malformed_tree, "LJSpeech"),
        ("real tree with a text file named .wav", real_corrupt_file, "kick.wav: cannot be read as audio"),
        ("real tree with too few clips", real_too_few, "asked for n=3"),
        ("notebook data path: more clips than the set has", notebook_too_many_clips, "asked for 100000 clips"),
        ("notebook data path: unknown data set", notebook_unknown_dataset, "unknown dataset 'podcasts'"),
    ]


def test_bad_datasets_give_one_clear_message(tmp_path):
    for case, call, want in _dataset_cases(tmp_path):
        with pytest.raises(DapError) as info:
            call()
        msg = str(info.value)
        assert want in msg and "\n" not in msg, (case, msg)
        entry = "dap.studies (notebooks)" if case.startswith("notebook") else "dap.data"
        _record(entry, case, "clear error", msg[:300] + ("..." if len(msg) > 300 else ""))


@pytest.mark.notebooks
def test_notebook_with_a_missing_real_tree_fails_with_one_line(tmp_path):
    """Through run_all's runner: the notebook fails, the summary line names the problem."""
    env = dict(os.environ, DAP_RESULTS=str(tmp_path / "results"))
    proc = subprocess.run([sys.executable, "-m", "dap.runner", "--profile", "smoke", "00", "-p", "source", "real",
                           "-p", "data_root", str(tmp_path / "no_such_root")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED 00_quickstart")]
    assert len(failed) == 1 and "DatasetError" in failed[0] and "does not exist" in failed[0], proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "00_quickstart" / "00_quickstart.ipynb").exists()
    _record("run_all.sh (notebook 00, source=real)", "real data root does not exist", "clear error", failed[0][:300],
            proc.returncode)


# ----------------------------------------------------------------------------- a 30-minute file
_MEMORY_SCRIPT = r"""
import re, sys, numpy as np, soundfile as sf
from dap import restore
src, out = sys.argv[1], sys.argv[2]
calls = [0]
def identity(x, mask, seed):
    calls[0] += 1
    return x
rep = restore.restore_file(src, out, process=identity)
# VmHWM: this process's peak RSS (ru_maxrss would carry the forking pytest's size across exec)
peak = int(re.search(r"VmHWM:\s*(\d+)", open("/proc/self/status").read()).group(1)) / 1024
print(peak, rep.windows, calls[0], sf.info(out).frames)
"""


def test_a_30_minute_file_is_restored_in_bounded_memory(tmp_path):
    """Windowed processing: the peak memory of restoring 30 minutes is that of 1 minute (the fits
    are replaced by an identity window function: 2009 tiny fits would take minutes; the windowing,
    resampling, cross-fade and streaming I/O are the real ones)."""
    results = {}
    for minutes in (1.0, 30.0):
        src = _long(tmp_path / f"long{minutes:g}.wav", minutes)
        out = tmp_path / f"out{minutes:g}.wav"
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(src), str(out)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        peak, windows, calls, frames = proc.stdout.split()
        results[minutes] = (float(peak), int(windows), time.time() - t0)
        assert int(frames) == int(minutes * 60 * 16000) and int(calls) == int(windows)
        a = sf.read(src, frames=160000, start=int(minutes * 60 * 16000) - 160000, dtype="int16")[0]
        b = sf.read(out, frames=160000, start=int(minutes * 60 * 16000) - 160000, dtype="int16")[0]
        assert np.array_equal(a, b)  # the last 10 s, after ~2000 cross-fades, are the input exactly
    growth = results[30.0][0] - results[1.0][0]
    log_case("memory", {"case": "30-minute 16 kHz mono file (57.6 MB PCM_16, 115 MB as float32)",
                             "detail": f"peak RSS {results[30.0][0]:.0f} MB vs {results[1.0][0]:.0f} MB for 1 minute "
                                       f"(+{growth:.0f} MB); {results[30.0][1]} windows in {results[30.0][2]:.0f} s"})
    _record("dap.restore (windowed)", "a 30-minute file", "works",
            f"bounded memory: +{growth:.0f} MB peak RSS over a 1-minute file; output identical")
    assert growth < 40, results


# ============================================================================= faults in a grid
from dap.data.clip import Clip  # noqa: E402
from dap.engine.grid import Grid, run_grid  # noqa: E402
from dap.engine.fit import FitConfig  # noqa: E402
from dap.core.store import ResultStore  # noqa: E402

L = 4096


def _clip(i: int) -> Clip:
    t = np.arange(L) / 16000
    audio = (np.sin(2 * np.pi * (200 + 50 * i) * t) * np.hanning(L)).astype(np.float32)
    return Clip(id=f"c{i}", dataset="digits", audio=audio / np.abs(audio).max())


def faulty_fit(clip, design):
    """Module level (spawn workers import it). c0/dilated: absurd learning rate (NaN / explosion);
    c1/conv: a bug (ValueError); c1/dilated: the worker dies (SIGSEGV, like the oneDNN crash)."""
    from dap.tasks import denoise

    if (clip.id, design) == ("c1", "conv"):
        raise ValueError("a bug inside the task")
    if (clip.id, design) == ("c1", "dilated"):
        os.kill(os.getpid(), signal.SIGSEGV)
    lr = 1e6 if (clip.id, design) == ("c0", "dilated") else 1e-3
    cfg = FitConfig(iterations=3, lr=lr, precision="fp32", progress=False, device="cpu")
    return denoise.restore(denoise.add_gaussian_noise(clip.audio, 0.1, seed=0), design, cfg, seed=0,
                           clean=clip.audio, prior_opts={"widths": (4, 8, 16)})


def _snr(clip, est):
    from dap import metrics

    return {"SNR": metrics.snr(clip.audio, est[0])}


def test_faulty_fits_are_recorded_and_the_rest_of_the_grid_completes(tmp_path):
    grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
    clips = [_clip(i) for i in range(3)]
    log = []
    rows = run_grid(ResultStore(tmp_path), grid, clips, ["conv", "dilated"], faulty_fit, _snr, progress=log.append,
                    workers=2)
    by = {(r.clip_id, r.design): r for r in rows.drop_duplicates(["clip_id", "design"]).itertuples()}
    assert len(by) == 6  # every fit of the grid has rows
    assert "not finite" in by["c0", "dilated"].error or "exploded" in by["c0", "dilated"].error
    assert "ValueError: a bug inside the task" in by["c1", "conv"].error
    assert "worker process died" in by["c1", "dilated"].error
    ok = [k for k, r in by.items() if r.status == "ok"]
    assert sorted(ok) == [("c0", "conv"), ("c2", "conv"), ("c2", "dilated")]
    assert rows.groupby("fit_id").size().max() == 4  # no duplicated rows (4 rules x 1 metric)
    # a rerun recomputes nothing: failures are recorded results, not holes
    again = run_grid(ResultStore(tmp_path), grid, clips, ["conv", "dilated"], faulty_fit, _snr,
                     progress=log.append, workers=2)
    assert len(again) == len(rows)
    for (cid, design), r in sorted(by.items()):
        log_case("faults", {"fit": f"{cid}/{design}", "status": r.status,
                                 "reason": r.error if isinstance(r.error, str) else ""})


def test_restore_with_an_absurd_learning_rate_keeps_going(tmp_path, capsys, one_thread):
    """The command line's windows: a diverged fit is reported and its window left as the input."""
    src = _wav(tmp_path / "in.wav", _tone(16000, 2.0))
    rc = cli.main(["restore", str(src), "-o", str(tmp_path / "o.wav"), *TINY, "--lr", "1e9", "--iterations", "3"])
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert rc == 0 and (tmp_path / "o.wav").exists() and warnings and "Traceback" not in err
    assert all("in.wav" in w and ("not finite" in w or "exploded" in w) for w in warnings)
    log_case("faults", {"fit": "restore, 3 windows, lr 1e9", "status": "completed with warnings",
                             "reason": warnings[0].split("fit of ", 1)[-1][:200]})


_ORPHAN_SCRIPT = r"""
import sys
from tests.test_reliability import _clip, sleepy_fit, _snr
from dap.engine.grid import Grid, run_grid
from dap.core.store import ResultStore
grid = Grid(task="denoise-gaussian", settings={"iterations": 3}, profile="test", seed=0)
run_grid(ResultStore(sys.argv[1]), grid, [_clip(i) for i in range(4)], ["conv"], sleepy_fit, _snr,
         progress=print, workers=2)
"""


def sleepy_fit(clip, design):
    """A fit that first announces its worker and sleeps ``DAP_TEST_SLEEP`` seconds (module level)."""
    marker = os.environ.get("DAP_TEST_MARKERS")
    if marker:
        Path(marker, f"{os.getpid()}").write_text(clip.id)
    time.sleep(float(os.environ.get("DAP_TEST_SLEEP", "0")))
    return faulty_fit(_clip(2), design)  # always a fit that works


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_killed_grid_leaves_no_orphan_workers_and_resumes_exactly(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    store = tmp_path / "store"
    env = dict(os.environ, DAP_TEST_MARKERS=str(markers), DAP_TEST_SLEEP="120", PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT, str(store)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(markers.iterdir())) < 2 and time.time() < deadline:  # both workers are fitting
        time.sleep(0.2)
    workers = [int(p.name) for p in markers.iterdir()]
    assert len(workers) == 2
    parent.kill()  # SIGKILL: no handler runs in the parent
    parent.wait()
    t0 = time.time()
    while any(_alive(w) for w in workers) and time.time() - t0 < 10:
        time.sleep(0.1)
    gone = time.time() - t0
    assert not any(_alive(w) for w in workers), "orphaned fit workers still running"
    assert not (store / "rows.csv").exists()  # nothing finished, nothing half-written
    env["DAP_TEST_SLEEP"] = "0"
    done = subprocess.run([sys.executable, "-c", _ORPHAN_SCRIPT, str(store)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_csv(store / "rows.csv")
    assert rows["fit_id"].nunique() == 4 and len(rows) == 16 and not rows.duplicated(["fit_id", "selection"]).any()
    log_case("interruption", {"run": "run_grid, 2 spawn workers mid-fit", "moment": "both workers fitting",
                                   "recorded_before": 0, "outcome": f"parent SIGKILLed; both workers exited "
                                                                    f"{gone:.1f} s later; rerun completed 4/4 fits"})


def test_result_store_keeps_rows_written_by_another_process_and_names_a_corrupt_file(tmp_path):
    a, b = ResultStore(tmp_path), ResultStore(tmp_path)  # e.g. a run still finishing, and its rerun
    a.add([{"fit_id": "f1", "metric": "SNR", "value": 1.0}])
    b.add([{"fit_id": "f2", "metric": "SNR", "value": 2.0}])  # b never saw f1: it must not drop it
    assert sorted(ResultStore(tmp_path).rows["fit_id"]) == ["f1", "f2"]
    b.add([{"fit_id": "f1", "metric": "SNR", "value": 3.0}])  # a fit's rows replace its old ones
    rows = ResultStore(tmp_path).rows
    assert len(rows) == 2 and rows.set_index("fit_id").loc["f1", "value"] == 3.0
    (tmp_path / "rows.csv").write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(DapError, match="rows.csv: the result rows cannot be read|not a result file"):
        ResultStore(tmp_path)
    log_case("faults", {"fit": "two ResultStores on one folder; a corrupt rows.csv", "status": "handled",
                             "reason": "rows of the other writer kept; corrupt file named in one DapError"})


# ============================================================================= interruption of run_all.sh
NB = "04_table3_inpainting"
KEY = ["fit_id", "selection", "metric"]
COMPARED = ["value", "status", "iterations", "best_iteration", "error", "gaps", "design", "clip_id", "precision"]


def _run_all(results: Path, runner_only: bool = False) -> subprocess.Popen:
    """``run_all.sh --profile smoke 04`` in its own process group (or the runner it execs, directly)."""
    env = dict(os.environ, DAP_RESULTS=str(results))
    cmd = [sys.executable, "-m", "dap.runner"] if runner_only else [str(REPO / "run_all.sh")]
    return subprocess.Popen(cmd + ["--profile", "smoke", NB[:2]], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _fits(results: Path) -> int:
    try:
        return pd.read_csv(results / NB / "rows.csv")["fit_id"].nunique()
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def _processes_of(results: Path) -> list[int]:
    """Live processes whose environment names this results folder (runner, papermill, kernel, workers)."""
    tag = f"DAP_RESULTS={results}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if tag in (proc / "environ").read_bytes().split(b"\0") and _alive(int(proc.name)):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _check_no_half_written_files(results: Path, finished: bool, reference: pd.DataFrame) -> None:
    folder = results / NB
    if (folder / "rows.csv").exists():
        rows = pd.read_csv(folder / "rows.csv")
        assert not rows.duplicated(KEY).any(), "duplicated rows"
        want = reference.groupby("fit_id").size()
        got = rows.groupby("fit_id").size()
        assert (got == want[got.index]).all(), "a fit with only part of its rows"  # all rows of a fit, or none
    for path in folder.rglob("*") if folder.exists() else []:
        if path.name.startswith(".") or path.is_dir():
            continue  # temporary files (never read) and the partial notebook
        if path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".flac":
            assert sf.read(path)[0].size > 0
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".png", ".pdf", ".md"):
            assert path.stat().st_size > 0
    assert (folder / f"{NB}.ipynb").exists() == finished  # a partial notebook never counts as done


@pytest.mark.notebooks
@pytest.mark.timeout(900)
def test_run_all_survives_sigkill_at_random_moments(tmp_path):
    base, work = tmp_path / "uninterrupted", tmp_path / "interrupted"
    t0 = time.time()
    assert _run_all(base).wait(timeout=600) == 0
    t_full = time.time() - t0
    reference = pd.read_csv(base / NB / "rows.csv")
    n_fits = reference["fit_id"].nunique()
    assert n_fits == 8

    rng = random.Random(20261127)
    # (moment, when, whom): the process group as a whole, or the runner alone (its children must follow)
    plans = [("startup", rng.uniform(1.0, 4.0), "group"), ("after fit", rng.randint(1, 2), "runner"),
             ("after fit", rng.randint(1, 2), "group")]
    kills: list[bool] = []  # per rerun: killed (True) or finished before the kill
    for label, when, whom in plans:
        before = _fits(work)
        proc = _run_all(work, runner_only=whom == "runner")
        start = time.time()
        if label == "startup":
            moment = f"{when:.1f} s after the start"
            while time.time() - start < when and proc.poll() is None:
                time.sleep(0.05)
        else:
            delay = rng.uniform(0.0, 1.0)
            moment = f"{delay:.2f} s after fit #{when} of this run was recorded"
            while _fits(work) < before + when and proc.poll() is None and time.time() - start < 300:
                time.sleep(0.05)
            time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            if whom == "group":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        k0 = time.time()
        while _processes_of(work) and time.time() - k0 < 10:
            time.sleep(0.1)
        left = _processes_of(work)
        assert not left, f"processes of the killed run still alive: {left}"
        _check_no_half_written_files(work, finished and proc.returncode == 0, reference)
        kills.append(not finished)
        log_case("interruption", {
            "run": f"run_all.sh --profile smoke 04 (rerun {len(kills)})",
            "moment": moment, "recorded_before": before,
            "outcome": ("finished before the kill" if finished else
                        f"SIGKILL to the {'process group' if whom == 'group' else 'runner alone'} after "
                        f"{time.time() - start:.1f} s; {_fits(work)}/{n_fits} "
                        f"fits recorded; no process left after {time.time() - k0:.1f} s; no half-written file")})
    assert _run_all(work).wait(timeout=600) == 0
    final = pd.read_csv(work / NB / "rows.csv")
    assert not final.duplicated(KEY).any()
    a = reference.sort_values(KEY).reset_index(drop=True)
    b = final.sort_values(KEY).reset_index(drop=True)
    assert a[KEY].equals(b[KEY]), "rows lost or added"
    for col in COMPARED:
        assert a[col].astype(str).equals(b[col].astype(str)), col  # NaN reads "nan" on both sides
    interrupted = sum(kills)
    log_case("determinism", {
        "what": f"run_all.sh smoke 04 ({n_fits} fits): uninterrupted vs interrupted {interrupted} times and resumed",
        "rows": len(a), "result": f"identical ({', '.join(COMPARED)}); uninterrupted run {t_full:.0f} s"})
    assert interrupted >= 3


# ============================================================================= determinism
def test_same_seed_same_rows_for_a_smoke_grid(tmp_path, one_thread):
    """The notebooks' inpainting grid (notebook 04's smoke profile, digits only) twice: equal rows."""
    from dap.config import profiles
    from dap.studies import inpainting_study

    p = profiles.resolve(NB, "smoke", datasets=("digits",), precision="fp32")
    quiet = lambda _: None  # noqa: E731
    a = inpainting_study(ResultStore(tmp_path / "a"), p, progress=quiet)
    b = inpainting_study(ResultStore(tmp_path / "b"), p, progress=quiet)
    assert len(a) > 0 and (a["status"] == "ok").all()
    cols = [c for c in a.columns if c not in ("seconds",)]
    pd.testing.assert_frame_equal(a[cols].sort_values(KEY).reset_index(drop=True),
                                  b[cols].sort_values(KEY).reset_index(drop=True))
    log_case("determinism", {"what": f"inpainting smoke grid (digits, {a['fit_id'].nunique()} fits) run twice, "
                                          f"same seed, fp32, CPU", "rows": len(a),
                                  "result": "identical in every column but seconds"})
