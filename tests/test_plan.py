"""The plan (``./run_all.sh --plan``) and restore's time estimate: their arithmetic on made-up
speeds, the cost table's provenance, the probe's cache, and that a plan runs nothing. Fast: the
probe is replaced by a fake except where one tiny real probe checks the fitting path."""

from __future__ import annotations

import json
import os

import pytest
import torch

from dap import cli, runner
from dap.config import costs
from dap.config.costs import (CPU_SECONDS_PER_ITERATION, NOTEBOOK_COSTS, PROBE_SAMPLES, REFERENCE_SAMPLES,
                              STARTUP_SECONDS, ProbeSpec, default_overhead)
from dap.config.plan import Machine, makespan, minutes, plan_lines, predict, probe_specs, reference_seconds
from dap.restore import estimate as restore_estimate
from dap.studies.common import fit_workers
from dap.tasks import probe

T1, F1, F2 = "02_table1_gaussian_denoising", "01_figure1_denoising_example", "06_figure2_convergence"
W1 = "07_wiass_figure2_side_information"


def _one_second(spec):
    """A fake machine: every iteration 1 s, the first too."""
    return 1.0, 1.0


def test_the_plan_is_fits_times_iterations_times_the_measured_speed_times_the_overhead():
    (plan,) = predict([T1], "quick", _one_second)
    # quick Table 1: 3 data sets x 3 clips x 4 designs, 150 iterations, clips of PROBE_SAMPLES samples
    assert plan.seconds == pytest.approx(STARTUP_SECONDS + NOTEBOOK_COSTS[T1].overhead * 36 * 150)
    dense_twice = predict([T1], "quick", lambda s: (2.0, 2.0) if s.design == "dilated_exp_dense" else (1.0, 1.0))
    assert dense_twice[0].seconds == pytest.approx(STARTUP_SECONDS + NOTEBOOK_COSTS[T1].overhead * 45 * 150)
    # the first iteration (prior and kernels built) counts once per fit
    (slow_start,) = predict([T1], "quick", lambda s: (1.0, 11.0))
    assert slow_start.seconds - plan.seconds == pytest.approx(NOTEBOOK_COSTS[T1].overhead * 36 * 10)
    # longer clips cost in proportion; workers in parallel divide, each timed with its share of the cores
    seen = []
    two_workers = Machine(resolve_precision=lambda r: "bf16", workers=lambda p: 2, cpu_threads=2)
    (paper,) = predict([T1], "paper", lambda s: seen.append(s) or (1.0, 1.0), machine=two_workers)
    groups = costs.fit_groups(costs.resolve(T1, "paper"))
    fits = sum(g.fits * 2000 * g.samples / PROBE_SAMPLES for g in groups)
    assert paper.seconds == pytest.approx(STARTUP_SECONDS + NOTEBOOK_COSTS[T1].overhead * fits / 2)
    assert {(s.threads, s.precision) for s in seen} == {(1, "bf16")} and "on 2 workers" in paper.how
    assert set(probe_specs([T1], "paper", machine=two_workers)) == set(seen)


def test_fits_shared_by_figures_and_table_1_are_counted_once_and_overrides_apply():
    f1, t1, f2 = predict([F1, T1, F2], "quick", _one_second)
    alone = predict([T1], "quick", _one_second)[0]
    assert t1.seconds < alone.seconds and "fits of 01 not counted again" in t1.how
    assert "3 fits x 150 it" in f2.how  # only the harmonic prior is new
    (short,) = predict([T1], "quick", _one_second, params={"iterations": 15, "sigma_unknown_elsewhere": 1})
    assert "36 fits x 15 it" in short.how


def test_fits_are_packed_on_the_workers_longest_first():
    """An odd number of fits leaves a worker idle at the end: Figure 2's three harmonic fits on two
    workers take two fits' time (the grid measured 1.51x a plan that divided by the workers)."""
    assert makespan([1.0, 1.0, 1.0], 2) == 2.0 and makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert makespan([2.0] * 4, 2) == 4.0 and makespan([1.0, 2.0], 1) == 3.0
    two = Machine(workers=lambda p: 2, cpu_threads=2)
    f1, f2 = predict([F1, F2], "quick", _one_second, machine=two)
    assert f2.seconds == pytest.approx(STARTUP_SECONDS + NOTEBOOK_COSTS[F2].overhead * 2 * 150)


def test_notebooks_without_priors_scale_their_measured_time_by_the_speed_ratio():
    def twice_the_reference(spec):
        return 2 * reference_seconds("auto" if spec.precision == "bf16" else "fp32"), 0.0

    (w1,) = predict([W1], "quick", twice_the_reference)  # 07's logged run had today's quick settings
    assert w1.seconds == pytest.approx(2 * NOTEBOOK_COSTS[W1].seconds) and "fp32" in w1.how
    assert predict([W1], "quick", twice_the_reference, params={"max_steps": 5})[0].seconds is None  # not measured so
    f3 = "08_wiass_figure3_attention"  # logged in today's quick settings; another budget is not measured
    assert predict([f3], "quick", twice_the_reference)[0].seconds == pytest.approx(2 * NOTEBOOK_COSTS[f3].seconds)
    assert predict([f3], "quick", twice_the_reference, params={"max_steps": 600})[0].seconds is None
    assert predict(["00_quickstart"], "paper", twice_the_reference)[0].seconds is not None  # same settings everywhere


def test_the_plan_ends_with_the_predicted_total_and_names_what_it_leaves_out():
    plans = predict([T1, W1], "smoke", _one_second)
    lines = plan_lines(plans)
    assert plans[1].seconds is None and "leaves out 07" in lines[-2]
    assert lines[-1] == f"predicted total: {minutes(plans[0].seconds)} min"
    assert minutes(30) == "0.5" and minutes(1800) == "30"


def test_the_overheads_reproduce_the_logged_runs_from_the_reference_costs():
    # fed the reference machine's per-iteration costs at the logged settings, the plan of the run of
    # 2026-11-27 (notebooks in its order) predicts each measured wall time exactly
    order = [F1, T1, "03_table2_environmental_denoising", "04_table3_inpainting", F2]

    def reference(spec):
        s = CPU_SECONDS_PER_ITERATION[spec.design] * PROBE_SAMPLES / REFERENCE_SAMPLES
        return s, s

    plans = predict(order, "quick", reference, params=costs._OLD_QUICK)
    for plan in plans:
        assert plan.seconds == pytest.approx(NOTEBOOK_COSTS[plan.notebook].seconds, rel=1e-6), plan.notebook
    assert NOTEBOOK_COSTS["00_quickstart"].current
    assert NOTEBOOK_COSTS[W1].current and NOTEBOOK_COSTS["08_wiass_figure3_attention"].current
    assert not NOTEBOOK_COSTS[T1].current and NOTEBOOK_COSTS["11_blind_stopping"].overhead is None
    assert 0.5 < default_overhead() < 2
    for notebook in NOTEBOOK_COSTS:  # every logged run's settings still resolve
        assert costs.measured_settings(notebook) is not None


def test_study_cost_is_unchanged_by_the_fit_groups():
    quick = costs.study_cost(T1, "quick")
    assert quick["fits"] == 36 and quick["fit_iterations"] == 36 * 150
    hours = sum(CPU_SECONDS_PER_ITERATION[d] for d in ("conv", "dilated", "dilated_exp", "dilated_exp_dense"))
    assert quick["cpu_hours"] == pytest.approx(3 * 3 * 150 * hours * 8192 / 16384 / 3600)


@pytest.fixture
def fake_probe(monkeypatch, tmp_path):
    """The probe replaced by a counter (0.5 s per iteration, 1 s to the first), its cache in tmp_path."""
    calls = []
    monkeypatch.setenv("DAP_CACHE", str(tmp_path))
    monkeypatch.setattr(probe, "time_iteration", lambda spec, **kw: calls.append(spec) or (0.5, 1.0))
    return calls


def test_plan_runs_no_notebook_and_uses_the_cache_the_second_time(fake_probe, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_notebook", lambda *a, **k: pytest.fail("--plan ran a notebook"))
    assert runner.main(["--plan", "--profile", "quick", "02", "07"]) == 0
    first = capsys.readouterr().out.strip().splitlines()
    assert first[-1].startswith("predicted total: ") and first[-1].endswith(" min")
    assert any(line.lstrip().startswith(T1) for line in first) and "probing" in "\n".join(first)
    probed = len(fake_probe)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = Machine(lambda p: runner.resolve_precision(p, device), fit_workers, 0 if device == "cuda" else os.cpu_count())
    assert probed == len(probe_specs([T1, W1], "quick", machine=machine))
    assert runner.main(["--plan", "--profile", "quick", "02", "07"]) == 0
    second = capsys.readouterr().out.strip().splitlines()
    header = next(line for line in second if line.startswith("run_all: plan for profile quick"))
    assert len(fake_probe) == probed and "from the cache" in header and second[-1] == first[-1]
    (cache,) = (tmp_path / "probe").glob("speed-*.json")
    assert json.loads(cache.read_text())["machine"]["device"] in ("cpu", "cuda")
    assert runner.main(["--plan", "--reprobe", "--profile", "quick", "02", "07"]) == 0
    assert len(fake_probe) == 2 * probed


def test_a_damaged_cache_is_measured_again(fake_probe, tmp_path, capsys):
    assert runner.main(["--plan", "00"]) == 0
    (cache,) = (tmp_path / "probe").glob("speed-*.json")
    cache.write_text("{not json")
    assert runner.main(["--plan", "00"]) == 0 and len(fake_probe) == 2
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("predicted total: ")


def test_a_run_prints_the_plan_and_each_real_time_beside_its_prediction(fake_probe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAP_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(runner, "write_summary", lambda *a, **k: None)
    monkeypatch.setattr(runner, "write_claims", lambda *a, **k: tmp_path / "CLAIMS.md")
    monkeypatch.setattr(runner, "run_notebook", lambda book, profile, *a, **k: {
        "notebook": book.stem, "profile": profile, "status": "ok", "seconds": 12.0, "peak_rss_mb": 1.0})
    assert runner.main(["--profile", "quick", "00"]) == 0
    out = capsys.readouterr().out
    assert "predicted total: " in out and "00_quickstart: ok in 12 s (predicted " in out
    assert runner.main(["--profile", "quick", "--no-plan", "00"]) == 0
    out = capsys.readouterr().out
    assert "predicted" not in out and "00_quickstart: ok in 12 s, peak" in out


def test_the_probe_times_the_real_fitting_path(one_thread):
    tiny = (("widths", (4, 8, 16)),)
    for spec in (ProbeSpec("denoise", "conv", tiny, "fp32"), ProbeSpec("separate", "conv", tiny, "fp32", "magnitude")):
        steady, first = probe.time_iteration(spec, samples=2048, timed=1)
        assert 0 < steady and 0 < first
    with pytest.raises(probe.ProbeError, match="multiple of 256"):
        probe.time_iteration(ProbeSpec("denoise", "conv", tiny, "fp32"), samples=1000)
    with pytest.raises(probe.ProbeError, match="unknown task"):
        probe.time_iteration(ProbeSpec("dance", "conv", tiny, "fp32"), samples=2048)


def test_restore_prints_its_estimate_from_a_probe_of_this_machine(tmp_path, monkeypatch, capsys, one_thread):
    import numpy as np
    import soundfile as sf

    seen = []
    monkeypatch.setattr(restore_estimate, "time_iteration",
                        lambda spec, samples, device: seen.append((spec, samples)) or (0.5, 1.0))
    src = tmp_path / "in.wav"
    sf.write(src, (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), 16000)
    argv = ["restore", str(src), "-o", str(tmp_path / "out.wav"), "--widths", "4,8,16", "--iterations", "2",
            "--design", "conv", "--precision", "fp32", "--device", "cpu"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    # one fit of at most 2 iterations: 1 s to the first, 0.5 s for the second
    assert "restore: estimated time: 0.0 min (1 fit(s) x up to 2 iterations x 0.5 s/iteration, measured just now" in err
    assert seen == [(ProbeSpec("denoise", "conv", (("widths", (4, 8, 16)),), "fp32"), 8192)]  # the window
    assert cli.main(argv + ["--quiet"]) == 0 and len(seen) == 1  # quiet: no estimate, no probe
    est = restore_estimate.Estimate(fits=2, cap=1500, steady=1.0, first=3.0)
    assert est.seconds == 2 * (3.0 + 1499) and "estimated time: 50 min" in est.line(True, "cpu")
    assert "usually stops earlier" not in est.line(False, "cpu")


def test_the_discrepancy_rules_stop_is_predicted_from_the_estimated_input_snr(tmp_path, monkeypatch):
    """The cap (1500) overstates a default restore several-fold (258 iterations at 5 dB): for the
    default prior the stop is predicted from each window's blind SNR, log-linear through the two
    measured points, at most the cap; any other prior counts the cap."""
    import argparse

    import numpy as np
    import soundfile as sf

    from dap import restore
    from dap.data.embedded import load_split
    from dap.restore.reading import scan
    from dap.studies.stopping import corrupt_at_snr

    (s0, n0), (s1, n1) = costs.DISCREPANCY_STOPS
    stop = restore_estimate.predicted_stop
    assert stop(s0, 1500) == pytest.approx(n0) and stop(s1, 1500) == pytest.approx(n1)
    assert stop((s0 + s1) / 2, 1500) == pytest.approx((n0 * n1) ** 0.5)  # log-linear
    assert stop(30.0, 1500) == 1500 and stop(-60.0, 1500) == 1.0
    assert restore_estimate.stop_is_modelled(restore.WindowPrior(), "denoise")
    assert not restore_estimate.stop_is_modelled(restore.WindowPrior(), "inpaint")  # a fixed budget
    for other in ({"widths": (4, 8, 16)}, {"design": "conv"}, {"tolerance": 1.2}, {"lr": 3e-3}, {"selection": "last"}):
        assert not restore_estimate.stop_is_modelled(restore.WindowPrior(**other), "denoise"), other

    # a 1.5-s sentence at 5 dB (two windows): the blind SNR of each is near 5 dB
    clean = load_split("speech", n=1, seed=0)[0].audio[:24000]
    noisy, _ = corrupt_at_snr(clean, "white", 5.0, seed=0)
    src = tmp_path / "sentence.wav"
    sf.write(src, noisy, 16000, subtype="FLOAT")
    snrs = restore_estimate.window_snrs(scan(src), 16384, 2048)
    assert len(snrs) == 2 and all(abs(s - 5.0) < 2.0 for s in snrs), snrs

    monkeypatch.setattr(restore_estimate, "time_iteration", lambda spec, samples, device: (1.0, 2.0))
    args = argparse.Namespace(task="denoise", design="dilated_exp_dense", widths=None, precision="auto",
                              device="cpu")
    text, est = cli._estimate(scan(src), 2, args, restore.WindowPrior(), 16384, 2048)
    cap = restore.DEFAULT_MAX_ITERATIONS
    assert est.predicted == pytest.approx(np.mean([stop(s, cap) for s in snrs]))
    assert est.seconds == pytest.approx(2 * (2.0 + est.predicted - 1)) and est.seconds < est.seconds_for(1500) / 3
    assert f"~{est.predicted:.0f} iterations" in text and "predicted from the estimated input SNR" in text
    assert f"at the cap of {cap}" in text
