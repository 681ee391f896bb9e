"""dap.restore (windowing, cross-fade, per-channel, resampling, gaps, atomic output) and the
``python -m dap`` command line. Most tests use stub window functions (identity, constant) so the
geometry is checked exactly; a few run real tiny-prior fits (widths 4/8/16, 1 iteration)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dap import cli, restore
from dap.core.errors import AudioError, FitDiverged

REPO = Path(__file__).resolve().parent.parent


def identity(x, mask, seed):
    return x


def _tone(sr, seconds, channels=1, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([amp / (c + 1) * np.sin(2 * np.pi * (300 + 110 * c) * t) for c in range(channels)], axis=1)


def _write(path, x, sr, subtype="PCM_16"):
    sf.write(path, x, sr, subtype=subtype)
    return path


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("n", [1000, 16384, 16385, 40000, 16384 * 7 + 5])
def test_windows_cover_the_file_with_the_minimum_overlap(n):
    length, overlap = 16384, 2048
    w = restore.plan_windows(n, length, overlap)
    assert w[0][0] == 0 and w[-1][1] == n
    assert all(b - a == min(length, n) for a, b in w)
    for (a0, b0), (a1, b1) in zip(w, w[1:]):
        assert a0 < a1 and b0 - a1 >= overlap  # neighbours overlap by at least `overlap`
    if n > length:  # the fewest windows: one less would leave less than `overlap`
        assert len(w) == 1 + -(-(n - length) // (length - overlap))


def test_crossfade_weights_ramp_only_towards_neighbours():
    w = restore.plan_windows(50000, 16384, 2048)
    first, mid, last = (restore.crossfade_weights(w, k, 2048) for k in (0, 1, len(w) - 1))
    assert first[0] == 1 and first[-1] < 0.01 and mid[0] < 0.01 and mid[-1] < 0.01 and last[-1] == 1
    assert (first > 0).all() and (mid > 0).all()


def test_identity_at_16k_is_exact_over_many_windows(tmp_path):
    x = _tone(16000, 5.3) + 0.01 * np.random.default_rng(0).standard_normal((84800, 1))
    src = _write(tmp_path / "in.wav", x, 16000)
    rep = restore.restore_file(src, tmp_path / "out.wav", process=identity)
    assert rep.windows == 6 and rep.fits == 6
    a, _ = sf.read(src, dtype="int16")
    b, _ = sf.read(tmp_path / "out.wav", dtype="int16")
    assert np.array_equal(a, b)  # the cross-fade is a partition of unity


@pytest.mark.parametrize("sr,channels,subtype", [(44100, 2, "PCM_24"), (8000, 1, "FLOAT"), (96000, 3, "DOUBLE")])
def test_resampling_keeps_rate_channels_length_and_subtype(tmp_path, sr, channels, subtype):
    x = _tone(sr, 2.5, channels)
    src = _write(tmp_path / "in.wav", x, sr, subtype)
    out = tmp_path / "out.wav"
    restore.restore_file(src, out, process=identity)
    info, y = sf.info(str(out)), sf.read(out, always_2d=True)[0]
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (sr, channels, x.shape[0], subtype)
    inner = slice(int(0.02 * sr), -int(0.02 * sr))  # the file edges see the resampler's zero padding
    err = y[inner] - x[inner]
    snr = 10 * np.log10(np.sum(x[inner] ** 2) / np.sum(err ** 2))
    assert snr > 40, snr  # a 16 kHz round trip of tones below 8 kHz, through windows and cross-fades


def test_channels_are_fitted_separately_at_their_own_peak(tmp_path):
    x = _tone(16000, 1.0, 2)
    x[:, 1] *= 0.01  # a quiet second channel
    src = _write(tmp_path / "in.wav", x, 16000, "FLOAT")
    seen = []

    def spy(x16, mask, seed):
        seen.append((float(np.abs(x16).max()), seed))
        return x16

    rep = restore.restore_file(src, tmp_path / "out.wav", process=spy)
    assert rep.fits == 2 and len(seen) == 2
    assert all(p == pytest.approx(1.0, abs=1e-3) for p, _ in seen)  # each channel peak-normalised
    assert seen[0][1] != seen[1][1]  # channels get their own seeds
    y = sf.read(tmp_path / "out.wav")[0]
    assert np.allclose(y, x, atol=1e-6)  # and scaled back


def test_a_silent_channel_is_not_fitted_and_stays_silent(tmp_path):
    x = _tone(16000, 1.0, 2)
    x[:, 1] = 0
    src = _write(tmp_path / "in.wav", x, 16000)
    calls = []
    rep = restore.restore_file(src, tmp_path / "out.wav", process=lambda a, m, s: calls.append(1) or a)
    assert len(calls) == 1 and rep.skipped_silent == 1
    assert not sf.read(tmp_path / "out.wav")[0][:, 1].any()


def test_a_diverged_window_is_left_as_the_input_with_a_warning(tmp_path):
    x = _tone(16000, 3.0)
    src = _write(tmp_path / "in.wav", x, 16000)
    warnings, n = [], {"k": 0}

    def flaky(x16, mask, seed):
        n["k"] += 1
        if n["k"] == 2:
            raise FitDiverged("loss is nan (not finite) at iteration 3")
        return 0.5 * x16

    rep = restore.restore_file(src, tmp_path / "out.wav", process=flaky, log=warnings.append)
    assert len(rep.failed) == 1 and "not finite" in rep.failed[0] and len(warnings) == 1
    assert "in.wav" in warnings[0] and "diverged" in warnings[0]


# ----------------------------------------------------------------------------- inpainting
def test_gaps_are_parsed_sorted_and_merged():
    assert restore.parse_gaps("2.0-2.1, 1.20-1.35,1.3-1.4,.5-.6") == [(0.5, 0.6), (1.2, 1.4), (2.0, 2.1)]
    for bad in ("", "1.2", "a-b", "1.3-1.2", "1-2-3", "-1-2", "1e400-1e401"):
        with pytest.raises(restore.RestoreError):
            restore.parse_gaps(bad)


def test_inpainting_changes_only_the_gaps_and_their_edges(tmp_path):
    sr = 16000
    x = _tone(sr, 4.0)
    src = _write(tmp_path / "in.wav", x, sr, "FLOAT")
    masks = []

    def fill(x16, mask, seed):
        masks.append(mask)
        assert not x16[~mask.observed()].any()  # the gaps are zeroed before the fit
        return np.full_like(x16, 0.25)

    rep = restore.restore_file(src, tmp_path / "out.wav", task="inpaint", gaps="1.0-1.2,1.3-1.35,3.0-3.1",
                               process=fill)
    y = sf.read(tmp_path / "out.wav")[0]
    assert rep.windows == 2  # the two close gaps share a window
    assert len(masks[0].spans) == 2 and len(masks[1].spans) == 1
    fade = int(restore.SPLICE_FADE_S * sr)
    for s, e in ((1.0, 1.2), (1.3, 1.35), (3.0, 3.1)):
        a, b = int(s * sr), int(e * sr)
        assert np.allclose(y[a:b], 0.25 * 0.5)  # filled (scaled back by the channel's peak 0.5)
    keep = np.ones(len(x), bool)
    for s, e in ((1.0, 1.2), (1.3, 1.35), (3.0, 3.1)):
        keep[int(s * sr) - fade: int(e * sr) + fade] = False
    assert np.array_equal(y[keep], x[keep, 0].astype(np.float32))  # untouched outside


def test_gap_errors_name_the_problem(tmp_path):
    src = _write(tmp_path / "in.wav", _tone(16000, 2.0), 16000)
    out = tmp_path / "out.wav"
    with pytest.raises(restore.RestoreError, match="after the end of the file"):
        restore.restore_file(src, out, task="inpaint", gaps="2.5-2.6", process=identity)
    with pytest.raises(restore.RestoreError, match="longer than one window"):
        restore.restore_file(src, out, task="inpaint", gaps="0.2-1.2", process=identity)
    with pytest.raises(restore.RestoreError, match="needs the gaps"):
        restore.restore_file(src, out, task="inpaint", process=identity)
    with pytest.raises(restore.RestoreError, match="only applies"):
        restore.restore_file(src, out, gaps="0.1-0.2", process=identity)
    assert not out.exists()


# ----------------------------------------------------------------------------- output
def test_output_is_atomic_when_interrupted(tmp_path):
    src = _write(tmp_path / "in.wav", _tone(16000, 3.0), 16000)
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous result")
    n = {"k": 0}

    def interrupted(x16, mask, seed):
        n["k"] += 1
        if n["k"] == 2:
            raise KeyboardInterrupt
        return x16

    with pytest.raises(KeyboardInterrupt):
        restore.restore_file(src, out, process=interrupted)
    assert out.read_bytes() == b"previous result"  # the old file, never half of the new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # no temporary left


def test_output_format_follows_the_suffix_and_keeps_the_subtype_when_possible(tmp_path):
    assert restore.output_format(tmp_path / "a.flac", "PCM_24") == ("FLAC", "PCM_24")
    assert restore.output_format(tmp_path / "a.flac", "FLOAT") == ("FLAC", "PCM_16")  # FLAC has no float
    assert restore.output_format(tmp_path / "a.WAV", "DOUBLE") == ("WAV", "DOUBLE")
    with pytest.raises(AudioError, match="cannot write this format"):
        restore.output_format(tmp_path / "a.xyz", "PCM_16")


# ----------------------------------------------------------------------------- real fits
@pytest.mark.parametrize("task,gaps", [("denoise", None), ("inpaint", "0.3-0.45")])
def test_tiny_deep_prior_through_dap_tasks(tmp_path, one_thread, task, gaps):
    x = _tone(22050, 0.7, 2) + 0.02 * np.random.default_rng(1).standard_normal((15435, 2))
    src = _write(tmp_path / "in.flac", x, 22050, "PCM_24")
    prior = restore.WindowPrior(design="conv", iterations=2, widths=(4, 8, 16), precision="fp32", device="cpu")
    rep = restore.restore_file(src, tmp_path / "out.flac", task=task, gaps=gaps, process=prior)
    y = sf.read(tmp_path / "out.flac", always_2d=True)[0]
    assert rep.fits == 2 and not rep.failed and y.shape == x.shape and np.isfinite(y).all()
    assert sf.info(str(tmp_path / "out.flac")).subtype == "PCM_24"


def test_deep_prior_rejects_the_oracle_rule_and_unknown_designs():
    with pytest.raises(restore.RestoreError, match="no clean reference"):
        restore.WindowPrior(selection="oracle")
    with pytest.raises(restore.RestoreError, match="unknown design"):
        restore.WindowPrior(design="transformer")


# ----------------------------------------------------------------------------- command line
def test_cli_restore_in_process(tmp_path, one_thread, capsys):
    src = _write(tmp_path / "in.wav", _tone(16000, 0.5), 16000)
    rc = cli.main(["restore", str(src), "-o", str(tmp_path / "out.wav"), "--widths", "4,8,16", "--iterations", "1",
                   "--design", "conv", "--precision", "fp32", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "out.wav").exists()
    assert "1 fit(s) of at most 1 iterations each, stopping when the residual reaches" in err and "denoised 0.50 s" in err
    assert "restore: estimated time: " in err and "measured just now on" in err  # a probe of this machine
    assert "restore: fit 1: 1 iterations (the cap: the residual is still" in err and "noise ~ " in err  # estimate, use
    assert "left as the input" in err  # a noise-free tone: no floor to reach, the input is kept


def test_cli_fixed_budget_and_help_say_how_restore_decides(tmp_path, one_thread, capsys):
    src = _write(tmp_path / "in.wav", _tone(16000, 0.5), 16000)
    rc = cli.main(["restore", str(src), "-o", str(tmp_path / "out.wav"), "--widths", "4,8,16", "--iterations", "2",
                   "--selection", "last", "--design", "conv", "--precision", "fp32", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0 and "1 fit(s) of 2 iterations each (last)" in err and "2 iterations (last of a fixed budget)" in err
    text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices["restore"].format_help().split())
    assert "discrepancy" in text and "noise floor" in text and "--selection last --iterations 200" in text
    assert cli.main(["restore", str(src), "-o", str(tmp_path / "o.wav"), "--tolerance", "0"]) == 2
    assert "must be a positive number" in capsys.readouterr().err


def test_cli_errors_are_one_line_with_the_file_and_a_status(tmp_path, capsys):
    src = _write(tmp_path / "in.wav", _tone(16000, 0.5), 16000)
    cases = [
        (["restore", str(tmp_path / "missing.wav"), "-o", "x.wav"], 1, "missing.wav: no such file"),
        (["restore", str(src), "-o", str(tmp_path / "o.wav"), "--task", "inpaint"], 1, "needs --gaps"),
        (["restore", str(src), "-o", str(tmp_path / "o.wav"), "--task", "inpaint", "--gaps", "9-10"], 1,
         "in.wav: gap 9-10 s starts after the end"),
        (["restore", str(src), "-o", str(tmp_path / "o.wav"), "--iterations", "0"], 2, "must be at least 1"),
        (["restore", str(src)], 2, "required: -o/--output"),
        (["nosuch"], 2, "invalid choice"),
    ]
    for argv, status, text in cases:
        assert cli.main(argv) == status, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and text in err and "Traceback" not in err, (argv, err)


def test_python_m_dap_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "dap", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for command in ("restore", "run", "claims", "compare", "corpus"):
        assert f"    {command} " in out.stdout


def test_fuzzing_findings_stay_fixed():
    """Replay every input the fuzzer once failed on (fuzz/regressions/, see fuzz/README.md)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dap_fuzz_target", REPO / "fuzz" / "target.py")
    target = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(target)
    found = sorted((REPO / "fuzz" / "regressions").iterdir())
    assert found
    for path in found:
        target.TestOneInput(path.read_bytes())


def test_an_output_the_encoder_would_crash_on_is_refused_first(tmp_path):
    """libsndfile + libvorbis segfault when encoding Vorbis above 200 kHz (found by fuzzing)."""
    src = _write(tmp_path / "in.wav", _tone(256000, 0.1), 256000)
    with pytest.raises(AudioError, match="Ogg Vorbis cannot hold 256000 Hz"):
        restore.restore_file(src, tmp_path / "out.ogg", process=identity)
    restore.restore_file(src, tmp_path / "out.flac", process=identity)  # FLAC takes it
