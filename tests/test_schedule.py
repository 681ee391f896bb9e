"""The paper's schedule is defined once (dap.config.schedule), and no task fits without a config."""

import numpy as np
import pytest

from dap.config.profiles import PROFILES, resolve
from dap.config.schedule import PAPER_ITERATIONS, PAPER_SCHEDULE
from dap.engine.fit import FitConfig
from dap.restore import WindowPrior
from dap.tasks import denoise, inpaint, separate


def test_fit_config_defaults_are_the_paper_schedule():
    cfg = FitConfig()
    assert (cfg.lr, cfg.lr_step, cfg.lr_gamma, cfg.iterations) == (
        PAPER_SCHEDULE.lr, PAPER_SCHEDULE.lr_step, PAPER_SCHEDULE.lr_gamma, PAPER_ITERATIONS)


@pytest.mark.parametrize("notebook", ["02_table1_gaussian_denoising", "04_table3_inpainting", "05_table4_separation"])
def test_every_profile_keeps_the_paper_schedule(notebook):
    for profile in PROFILES[notebook]:
        p = resolve(notebook, profile)
        assert (p.lr, p.lr_step, p.lr_gamma) == (PAPER_SCHEDULE.lr, PAPER_SCHEDULE.lr_step, PAPER_SCHEDULE.lr_gamma)


def test_restore_windows_use_the_paper_learning_rate():
    assert WindowPrior().lr == PAPER_SCHEDULE.lr


def test_a_task_called_without_a_config_raises():
    x = np.zeros(4096, np.float32)
    with pytest.raises(TypeError, match="config"):
        denoise.restore(x, "conv")
    with pytest.raises(TypeError, match="config"):
        inpaint.restore(x, inpaint.GapMask(4096, ()), "conv")
    with pytest.raises(TypeError, match="config"):
        separate.restore(x, "conv")
