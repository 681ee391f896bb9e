"""Paper 2's last.pt is written only every ``checkpoint_seconds`` (it is ~386 MB at paper size), and
a run killed between two writes still resumes to exactly the parameters of an uninterrupted run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from dap.wiass import train as T
from tests.test_wiass_train import _params, sets, settings  # noqa: F401 - sets is a fixture


def _count_last_writes(monkeypatch) -> list:
    writes = []
    real = T._save

    def save(path, obj):
        if path.name == "last.pt":
            writes.append(obj["state"]["epoch"])
        real(path, obj)

    monkeypatch.setattr(T, "_save", save)
    return writes


def test_last_checkpoint_is_written_per_interval_and_always_at_the_end(sets, tmp_path, monkeypatch):
    train_set, valid_set, _ = sets
    writes = _count_last_writes(monkeypatch)
    T.train(settings(epochs=3, checkpoint_seconds=1e9), train_set, valid_set, tmp_path / "rare", progress=False)
    assert writes == [3]  # only the end of the training
    writes.clear()
    T.train(settings(epochs=3, checkpoint_seconds=0), train_set, valid_set, tmp_path / "every", progress=False)
    assert writes == [1, 2, 3]
    assert settings(checkpoint_seconds=0).id == settings(checkpoint_seconds=1e9).id  # not part of the model's id
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        settings(checkpoint_seconds=-1)


class Killed(Exception):
    """Stands for SIGKILL in the middle of an epoch."""


def test_a_run_killed_between_checkpoints_resumes_exactly(sets, tmp_path, monkeypatch):
    train_set, valid_set, _ = sets
    s = settings(epochs=3, checkpoint_seconds=1e9)  # 4 steps per epoch
    full = T.train(s, train_set, valid_set, tmp_path / "full", progress=False)

    cut = tmp_path / "cut"
    first = T.train(s, train_set, valid_set, cut, progress=False, stop_after_steps=4)  # end of epoch 0
    assert first.status == "interrupted"
    real_val, calls = T.validation_loss, []

    def dies_in_the_third_epoch(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # epochs 1 done (validated, no checkpoint), killed validating epoch 2
            raise Killed
        return real_val(*a, **k)

    monkeypatch.setattr(T, "validation_loss", dies_in_the_third_epoch)
    with pytest.raises(Killed):
        T.train(s, train_set, valid_set, cut, progress=False)
    assert torch.load(cut / "last.pt", weights_only=False)["state"]["epoch"] == 1  # older than the work done
    monkeypatch.setattr(T, "validation_loss", real_val)
    resumed = T.train(s, train_set, valid_set, cut, progress=False)
    assert resumed.status == "done" and resumed.steps == full.steps == 12
    assert resumed.best_epoch == full.best_epoch and resumed.best_val == full.best_val
    a, b = _params(full.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(full.history, resumed.history)
