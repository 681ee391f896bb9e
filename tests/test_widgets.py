"""The deep-prior explorer: its logic (dap.explore) and its ipywidgets UI (dap.explore.widgets), headless.

Fits use tiny widths (4/8/16) and a handful of iterations: they test the plumbing (updates, Stop,
errors), not restoration quality.
"""

import io

from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from dap import explore
from dap.core.errors import AudioError, DapError
from dap.explore import ExplorerError, LiveFit, Choices
from dap.tasks.inpaint import MaskError

TINY = dict(widths=(4, 8, 16), precision="fp32", seconds=0.256)


def _wav(x, sr=16000, fmt="WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt)
    return buf.getvalue()


def _clip(n=8192, seed=0) -> np.ndarray:
    t = np.arange(n) / 16000
    return (0.5 * np.sin(2 * np.pi * 220 * t) * np.hanning(n)).astype(np.float32) + \
        0.01 * np.random.default_rng(seed).standard_normal(n).astype(np.float32)


# ----------------------------------------------------------------------------- settings and clips
def test_settings_validate_with_one_message_naming_each_problem():
    with pytest.raises(ExplorerError) as err:
        Choices(task="deblur", design="resnet", sigma=2.0)
    msg = str(err.value)
    assert "task" in msg and "design" in msg and "sigma" in msg and "\n" not in msg
    s = Choices.from_params(SimpleNamespace(design="conv", widths=("16", "32", "64"), profile="quick", autorun=True))
    assert s.widths == (16, 32, 64) and s.size_name == "laptop" and s.design == "conv"
    assert Choices(seconds=0.5).samples == 7936 and Choices(seconds=0.512).samples == 8192
    assert not Choices(sigma=0).has_reference and Choices(task="inpaint", sigma=0).has_reference


def test_crop_loudest_finds_the_burst_and_pads_short_clips():
    x = np.zeros(40000, dtype=np.float32)
    x[30000:31000] = 1.0
    window, start = explore.crop_loudest(x, 4096)
    assert window.shape == (4096,) and start % 256 == 0 and start <= 30000 and start + 4096 >= 31000
    assert window.sum() == pytest.approx(1000)
    short, start = explore.crop_loudest(np.ones(1000, dtype=np.float32), 4096)
    assert short.shape == (4096,) and start == 0 and short[1000:].sum() == 0


def test_embedded_clip_range_and_mixture():
    ids = explore.embedded_ids("digits")
    audio, label = explore.embedded_clip("digits", 1)
    assert label == f"digits/{ids[1]}" and audio.ndim == 1 and audio.dtype == np.float32
    with pytest.raises(ExplorerError, match=rf"0\.\.{len(ids) - 1}"):
        explore.embedded_clip("digits", len(ids))
    mix, _ = explore.embedded_clip("stems", 0)
    assert np.any(mix)
    x, where = explore.embedded_excerpt("speech", 0, 0.512)
    assert x.shape == (8192,) and np.max(np.abs(x)) == pytest.approx(1.0) and "speech/" in where


def test_read_upload_decodes_any_rate_and_channels():
    stereo = np.stack([_clip(44100), -_clip(44100, 1)], axis=1)  # (L, 2) at 44.1 kHz
    x = explore.read_upload(_wav(stereo, 44100, "FLAC"), "mine.flac")
    assert x.ndim == 1 and x.dtype == np.float32 and abs(x.shape[0] - 16000) <= 1


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"certainly not an audio file", "cannot be read as audio"),
    (_wav(np.zeros(16000, dtype=np.float32)), "silent"),
    (_wav(_clip(1000)), "at least"),
])
def test_read_upload_rejects_bad_files_in_one_line(content, words):
    with pytest.raises(AudioError) as err:
        explore.read_upload(content, "upload.wav")
    msg = str(err.value)
    assert msg.startswith("upload.wav:") and words in msg and "\n" not in msg and "BytesIO" not in msg


def test_make_problem_denoise_inpaint_and_as_is():
    audio = _clip(20000)
    noisy = explore.make_problem(audio, Choices(sigma=0.1, seconds=0.256), "test")
    assert noisy.length == 4096 and noisy.score_key == "snr" and noisy.mask is None
    noise = noisy.observed - noisy.clean
    assert np.std(noise) == pytest.approx(0.1, rel=0.1)
    assert np.isfinite(noisy.input_snr) and np.max(np.abs(noisy.clean)) == pytest.approx(1.0)
    gaps = explore.make_problem(audio, Choices(task="inpaint", n_gaps=2, gap_s=0.05, seconds=0.512), "test")
    assert gaps.score_key == "snr_gaps" and gaps.mask.n_gaps == 2
    assert all(not np.any(gaps.observed[a:b]) for a, b in gaps.mask.spans)
    assert np.all(gaps.mask.durations == 800)
    as_is = explore.make_problem(audio, Choices(sigma=0.0, seconds=0.256), "mine")
    assert as_is.clean is None and as_is.score_key == "loss" and np.isnan(as_is.input_snr)
    with pytest.raises(MaskError, match="do not fit"):
        explore.make_problem(audio, Choices(task="inpaint", n_gaps=4, gap_s=0.25, seconds=0.256), "test")
    with pytest.raises(AudioError, match="silent"):
        explore.make_problem(np.zeros(8192, np.float32), Choices(seconds=0.256), "zeros")


# ----------------------------------------------------------------------------- live fits
def _problem(**kw):
    s = Choices(**{**TINY, **kw})
    return explore.make_problem(_clip(), s, "test"), s


def test_live_fit_reports_every_few_iterations_and_at_the_end():
    problem, s = _problem(iterations=4, update_every=2)
    snaps = []
    live = LiveFit(problem, s, on_update=lambda snap: snaps.append((snap.state, snap.iteration, snap.message)))
    live.run()
    assert [(st, it) for st, it, _ in snaps] == [("running", 1), ("running", 2), ("running", 4), ("done", 4)]
    assert live.state == "done" and live.n_updates == 4
    assert len(live.history(s.design)) == 4 and {"loss", "snr"} <= set(live.history(s.design).columns)
    assert live.output().shape == (problem.length,)
    assert "noisy input" in snaps[-1][2] and snaps[-1][2].startswith("done")
    m = live.checks(prefix="run/")
    assert m["run/state"] == "done" and m["run/iterations_done"] == 4 and "run/dilated_exp/last_snr" in m
    table = live.summary()
    assert list(table["iterations"]) == [4] and "best snr" in table


def test_stop_ends_the_fit_early_and_skips_the_remaining_designs():
    problem, s = _problem(iterations=50, update_every=1)
    live = LiveFit(problem, s, designs=("conv", "dilated"), on_update=lambda snap: None)
    live.on_update = lambda snap: live.stop() if snap.iteration >= 2 else None
    live.start()
    live.wait(timeout=120)
    assert not live.running and live.state == "stopped"
    assert list(live.results) == ["conv"] and live.results["conv"].iterations == 2


def test_inpainting_and_no_reference_runs_track_their_own_scores():
    problem, s = _problem(task="inpaint", n_gaps=1, gap_s=0.05, iterations=2)
    live = LiveFit(problem, s).run()
    assert "snr_gaps" in live.history(s.design)
    problem, s = _problem(sigma=0.0, iterations=2, output="oracle")
    live = LiveFit(problem, s).run()
    assert "snr" not in live.history(s.design) and live.output().shape == (problem.length,)  # oracle -> last


def test_a_failing_fit_is_reported_in_one_line(monkeypatch):
    def boom(*args, **kwargs):
        raise DapError("the prior exploded\nin two lines")

    monkeypatch.setattr(explore.denoise, "restore", boom)
    problem, s = _problem(iterations=2)
    snaps = []
    live = LiveFit(problem, s, on_update=snaps.append)
    with pytest.raises(DapError):
        live.run()
    assert live.state == "failed" and live.error == "the prior exploded in two lines"
    assert snaps[-1].state == "failed" and snaps[-1].message == "failed: the prior exploded in two lines"


def test_progress_figure_png_and_wav():
    problem, _ = _problem()
    png = explore.figure_png(explore.progress_figure(problem, {"conv": [{"iteration": 1, "loss": 2.0, "snr": 1.0}]},
                                                     problem.observed))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    wav = explore.wav_bytes(problem.observed * 10)  # clipped, not wrapped
    x, sr = sf.read(io.BytesIO(wav))
    assert sr == 16000 and x.shape == (problem.length,) and np.max(np.abs(x)) <= 1.0
    assert explore.playback_gain(problem) * max(np.abs(problem.observed).max(), 1) == pytest.approx(0.9)


# ----------------------------------------------------------------------------- the widget UI
@pytest.fixture
def explorer():
    import ipywidgets  # noqa: F401 - a dependency: missing, the test fails rather than skips
    from dap.explore.widgets import Explorer

    return Explorer(Choices(**TINY, iterations=2, update_every=1))


def test_explorer_previews_then_runs_and_updates_the_players(explorer):
    assert explorer.w_plot.value[:4] == b"\x89PNG" and "press Run" in explorer.w_status.value
    assert explorer.w_audio["clean"].value[:4] == b"RIFF" and explorer.w_audio["restored"].layout.visibility == "hidden"
    before = explorer.w_plot.value
    explorer.run(wait=True)
    assert "done" in explorer.w_status.value and explorer.w_plot.value != before
    assert explorer.w_audio["restored"].layout.visibility == "visible"
    assert explorer.w_audio["restored"].value[:4] == b"RIFF"
    assert not explorer.w_run.disabled and explorer.w_stop.disabled
    assert "Dilated Conv. (exp)" in explorer.w_table.value
    # change a widget and run again: the new design's curve and output replace the old ones
    explorer.w_design.value = "conv"
    explorer.run(wait=True)
    assert list(explorer.live.results) == ["conv"] and "Convolution" in explorer.w_status.value
    assert set(explorer.signals()) == {"clean", "corrupted", "restored (Convolution, last)"}
    assert explorer.figure() is not None and len(explorer.summary()) == 1


def test_explorer_compare_mode_fits_the_four_designs(explorer):
    explorer.w_iterations.value = 1
    live = explorer.run(mode="compare", wait=True)
    assert list(live.results) == ["conv", "dilated", "dilated_exp", "dilated_exp_dense"]
    assert len(explorer.summary()) == 4 and "Dilated Conv. (exp) + Dense" in explorer.w_budget.value
    assert live.checks()["n_designs"] == 4


def test_explorer_stop_button_stops_a_background_fit(explorer):
    explorer.w_iterations.value = 200
    seen = []
    live = explorer.run()  # background thread: returns at once
    assert live is not None and explorer.w_stop.disabled is False
    original = live.on_update

    def click_stop_after_two(snap):
        original(snap)
        seen.append(snap.iteration)
        if snap.iteration >= 2 and snap.state == "running":
            explorer.w_stop.click()

    live.on_update = click_stop_after_two
    live.wait(timeout=120)
    assert live.state == "stopped" and live.results["dilated_exp"].iterations < 200
    assert "stopped" in explorer.w_status.value and not explorer.w_run.disabled


def test_explorer_upload_errors_show_one_line_and_keep_the_clip(explorer):
    label = explorer.problem.label
    assert not explorer.use_upload(_wav(np.zeros(16000, dtype=np.float32)), "quiet.wav")
    assert "quiet.wav: the audio is silent" in explorer.w_status.value and explorer.problem.label == label
    assert explorer.w_dataset.value == "digits"
    assert not explorer.use_upload(b"garbage", "notes.txt")
    assert "notes.txt: cannot be read as audio" in explorer.w_status.value
    assert explorer.use_upload(_wav(_clip(20000)), "mine.wav")
    assert explorer.w_dataset.value == "upload" and "mine.wav" in explorer.problem.label
    explorer.w_sigma.value = 0.0  # fit the upload as it is: no reference, the curve is the loss
    assert explorer.problem.clean is None and explorer.w_audio["clean"].layout.visibility == "hidden"


def test_explorer_invalid_choice_is_a_status_line_not_a_traceback(explorer):
    explorer.w_task.value = "inpaint"
    explorer.w_gaps.value, explorer.w_gap_s.value = 4, 0.25  # cannot fit in 0.256 s
    assert "do not fit" in explorer.w_status.value
    assert explorer.run() is None and "do not fit" in explorer.w_status.value
    with pytest.raises(MaskError):
        explorer.run(wait=True)


def test_a_keyboard_interrupt_while_waiting_stops_the_fit_cleanly(monkeypatch):
    """The kernel's interrupt (a notebook cell waiting on a run) acts as the Stop button."""
    problem, s = _problem(iterations=200, update_every=1)
    live = LiveFit(problem, s)
    thread = live.start()
    real_join, calls = thread.join, []

    def join(timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_join(timeout)

    monkeypatch.setattr(thread, "join", join)
    live.wait()
    assert not live.running and live.state == "stopped" and live.results["dilated_exp"].iterations < 200


def test_explorer_rejects_an_unknown_clip_in_one_line():
    import ipywidgets  # noqa: F401 - a dependency: missing, the test fails rather than skips
    from dap.explore.widgets import Explorer

    with pytest.raises(ExplorerError, match=r"clip_index 999 is out of range: digits has clips 0\.\."):
        Explorer(Choices(**TINY, clip_index=999))
    with pytest.raises(ExplorerError, match="dataset must be one of"):
        Explorer(Choices(**TINY, dataset="birdsong"))
