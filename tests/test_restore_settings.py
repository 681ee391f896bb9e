"""restore's time/quality curve (dap.restore.settings_curve): reading a smaller cap off a longer fit
must give what restore itself returns under that cap, and the default is picked by the stated rule."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dap import metrics
from dap.restore import WindowPrior
from dap.restore.defaults import DEFAULT_DESIGN, DEFAULT_MAX_ITERATIONS, DEFAULT_WIDTHS, KEEP_INPUT_RATIO
from dap.restore.settings_curve import (CAPS, MARGIN_DB, choose, choose_default, curve_markdown, curve_rows,
                                        curve_table, output_under_cap, reference_rows, setting_label)
from dap.studies.stopping import corrupt_at_snr
from dap.tasks import denoise


def _history(losses, snrs):
    return pd.DataFrame({"iteration": np.arange(1, len(losses) + 1), "loss": losses, "snr": snrs})


def test_output_under_cap_follows_restores_rule():
    h = _history([9.0, 3.0, 1.5, 0.9, 0.8], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert output_under_cap(h, 1.0, 5, 0.5) == {"iterations": 4, "snr_db": 4.0, "reached": True, "kept_input": False}
    # the cap before the floor, loss 1.5 x the floor: the iterate at the cap
    assert output_under_cap(h, 1.0, 3, 0.5) == {"iterations": 3, "snr_db": 3.0, "reached": False, "kept_input": False}
    # loss still >= KEEP_INPUT_RATIO x the floor at the cap: the input itself
    assert KEEP_INPUT_RATIO <= 3.0
    assert output_under_cap(h, 1.0, 2, 0.5) == {"iterations": 2, "snr_db": 0.5, "reached": False, "kept_input": True}
    with pytest.raises(ValueError, match="before the cap"):
        output_under_cap(h.iloc[:3], 0.1, 5, 0.5)
    with pytest.raises(ValueError, match="every iteration"):
        output_under_cap(h.iloc[[0, 2, 3]], 1.0, 3, 0.5)


def test_a_smaller_cap_read_off_a_longer_fit_is_what_restore_returns(one_thread):
    """The curve's premise: restore under cap c returns what the benchmark reads off the cap-C fit."""
    t = np.arange(4096) / 16000
    clean = (0.5 * np.sin(2 * np.pi * 220 * t) + 0.25 * np.sin(2 * np.pi * 440 * t + 1)).astype(np.float32)
    noisy, extra = corrupt_at_snr(clean, "white", 5.0, seed=3)
    opts = dict(design="conv", widths=(4, 8, 16), precision="fp32", device="cpu", lr=1e-2)
    long = WindowPrior(iterations=120, **opts)
    res = denoise.restore(noisy, "conv", long.fit_config("denoise"), seed=7, clean=clean,
                          prior_opts=long.prior_opts(), noise=long.noise)
    floor = res.extra["noise_floor"]
    assert not res.extra["discrepancy_reached"]  # the long fit ran every iteration up to 120
    seen = set()
    for tolerance, cap in ((1.0, 2), (1.0, 120), (2.5, 120)):
        read = output_under_cap(res.history, floor, cap, extra["input_snr"], tolerance)
        prior = WindowPrior(iterations=cap, tolerance=tolerance, **opts)
        out = prior(noisy, None, 7)
        fit = prior.fits[-1]
        assert (fit.iterations, fit.reached, fit.kept_input) == (read["iterations"], read["reached"], read["kept_input"])
        assert metrics.snr(clean, out) == pytest.approx(read["snr_db"], abs=1e-4)
        seen.add("reached" if read["reached"] else "kept" if read["kept_input"] else "cap")
    assert seen == {"reached", "kept", "cap"}, seen  # every branch of the rule


def _fits_and_trajectories():
    """Two settings x two cases with made-up trajectories (SNR rises 0.01 dB per iteration): the dense
    prior (1 s per iteration) ends at 1.2 x the floor; conv (0.25 s) reaches it at iteration 267."""
    fits, traj = [], []
    for design, widths, speed, floor in (("dilated_exp_dense", "35/70/140", 1.0, 1.0), ("conv", "35/70/140", 0.25, 1.0)):
        for snr in (0.0, 10.0):
            fit_id = f"white-{snr:g}|{design}"
            n = 300
            losses = np.linspace(5.0, 0.5, n) if design == "conv" else np.linspace(5.0, 1.2, n)
            traj.append(pd.DataFrame({"fit_id": fit_id, "iteration": np.arange(1, n + 1), "loss": losses,
                                      "snr": snr + 0.01 * np.arange(1, n + 1)}))
            fits.append({"fit_id": fit_id, "noise": "white", "mix_snr_db": snr, "input_snr_db": snr,
                         "design": design, "widths": widths, "cap": n, "iterations": n, "seconds": speed * n,
                         "window_s": 1.024, "floor_est": floor})
    return pd.DataFrame(fits), pd.concat(traj)


def test_curve_table_and_the_default_rule():
    fits, traj = _fits_and_trajectories()
    rows = curve_rows(fits, traj, caps=(100, 300))
    assert len(rows) == 8
    by = rows.set_index(["setting", "cap", "case"])
    dense, conv = "dilated_exp_dense 35/70/140", "conv 35/70/140"
    assert by.loc[(dense, 300, "white 10 dB"), "output_snr_db"] == pytest.approx(13.0)  # the iterate at the cap
    assert by.loc[(conv, 300, "white 10 dB"), "iterations"] == 267                      # the floor
    assert by.loc[(conv, 100, "white 10 dB"), "kept_input"]                             # loss 3.5 x the floor
    table = curve_table(rows).set_index(["setting", "cap"])
    assert set(table["n"]) == {2}
    assert table.loc[(dense, 300), "output_snr_db"] == pytest.approx(8.0)
    assert table.loc[(conv, 300), "below_best_db"] == pytest.approx(0.33)
    assert not table.loc[(dense, 100), "within_margin"]  # 3 dB below the best
    pick = choose_default(table.reset_index())
    assert (pick["setting"], pick["cap"]) == (conv, 300)  # within 0.5 dB and the fastest
    assert pick["s_per_audio_s"] == pytest.approx(0.25 * 267 / 1.024)
    # a case that some setting lacks is left out of every setting's means
    partial = curve_table(rows[~((rows["setting"] == conv) & (rows["case"] == "white 0 dB"))])
    assert set(partial["n"]) == {1} and partial["output_snr_db"].max() == pytest.approx(13.0)
    # what needs no fit is scored beside the settings, against the same best, and never chosen
    refs = pd.DataFrame({"noise": "white", "mix_snr_db": [0.0, 10.0, 0.0, 10.0], "input_snr_db": [0.0, 10.0, 0.0, 10.0],
                         "method": ["noisy input"] * 2 + ["classical"] * 2, "output_snr_db": [0.0, 10.0, 9.0, 11.0],
                         "seconds": [0.0, 0.0, 0.1, 0.1], "window_s": 1.024})
    both = curve_table(pd.concat([rows, reference_rows(refs)], ignore_index=True)).set_index(["setting", "cap"])
    assert both.loc[("noisy input", 0), "below_best_db"] == pytest.approx(3.0)
    assert both.loc[("classical", 0), "below_best_db"] == pytest.approx(-2.0)  # better than every setting
    assert (choose_default(both.reset_index())["setting"], choose_default(both.reset_index())["cap"]) == (conv, 300)
    text = curve_markdown(fits, traj, refs)
    assert "**Chosen:** conv 35/70/140, cap 250:" in text  # the published caps only; both at +2.5 dB there
    assert "**Chosen:**" in text and "classical" in text and setting_label("conv", None) in text


KEPT = Path(__file__).resolve().parent.parent / "results" / "reference" / "restore_settings"


def test_the_published_curve_is_what_the_kept_rows_give(tmp_path):
    """results/reference/restore_settings/curve.md (quoted in docs/stopping.md) is derived from the kept
    rows by the benchmark's --derive, not typed."""
    for name in ("fits.csv", "trajectories.csv.gz", "references.csv", "machine.txt"):
        shutil.copy(KEPT / name, tmp_path / name)
    subprocess.run([sys.executable, str(KEPT.parents[2] / "benchmarks" / "bench_restore_settings.py"), "--derive",
                    str(tmp_path)], check=True, capture_output=True, text=True, timeout=300)
    assert (tmp_path / "curve.md").read_text() == (KEPT / "curve.md").read_text()


def test_restores_defaults_are_the_setting_the_kept_curve_chooses():
    """The default design, widths and cap of `python -m dap restore` are the fastest setting within
    MARGIN_DB of the best on the kept rows (docs/stopping.md): changing either alone fails here."""
    fits = pd.read_csv(KEPT / "fits.csv")
    rows = curve_rows(fits, pd.read_csv(KEPT / "trajectories.csv.gz"), [c for c in CAPS if c <= fits["cap"].min()])
    rows = pd.concat([rows, reference_rows(pd.read_csv(KEPT / "references.csv"))], ignore_index=True)
    _, _, pick = choose(rows)
    assert pick["setting"] == setting_label(DEFAULT_DESIGN, DEFAULT_WIDTHS)
    assert int(pick["cap"]) == DEFAULT_MAX_ITERATIONS
