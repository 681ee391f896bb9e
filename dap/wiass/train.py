"""Training of paper 2's models (section 4.2), resumable from atomic checkpoints.

Protocol of the paper: mini-batches (128 spectrograms) drawn at random from the training set, L1
loss on the target magnitude, Adam with lr 1e-4, betas (0.9, 0.999), eps 1e-8 and weight decay
1e-3, and the model with the lowest validation loss is kept ("after 100 epochs without
improvement", i.e. early stopping with patience 100). Budgets smaller than the paper's are set by
``epochs`` / ``max_steps`` (profiles).

The project's reading, each a setting with the paper's literal choice available (docs/wiass.md says
what each fixed):

* ``decay="decoupled"``: the weight decay rate 0.001 as AdamW's decoupled decay. Adam's coupled L2
  decay (``decay="coupled"``) adds a gradient hundreds of times the L1 loss's gradient on the
  encoders' weights (a mean L1 over ~10^6 elements is tiny) and drives them to zero;
* ``mask_padding=True``: the padding steps are excluded from the attention's softmax;
* ``output_leak=0.01``: a leaky output during training only (see :mod:`dap.wiass.model`);
* ``guide_weight`` (0 = off, the paper): an optional guided-attention term, a stated deviation that
  uses the known alignment of the generated side information during training
  (:func:`guided_attention_loss`).

Side information during training is drawn afresh every time an example is visited, from the
trainer's own generator: the paper "randomly choose[s] the padding length on both sides for each
batch", so for M2 and A1 (whose content has the mixture's length N) one left padding is drawn per
batch; A2 / A3.1 sequences have a length that differs per example, so their padding (and their
deletions) are drawn per example. Validation uses fixed side information per example
(:func:`dap.wiass.configurations.fixed_side_info`), so validation losses are comparable across
epochs.

Checkpoints (``folder/last.pt``, written atomically with :func:`dap.core.files.atomic_write_bytes`)
hold the model, the optimiser, the epoch, the position inside the epoch and its permutation, the
best validation loss so far, the loss history and the numpy / torch generator states; the best
model is written to ``folder/best.pt`` whenever the validation loss improves. ``last.pt`` is written
at the end of an epoch only when ``checkpoint_seconds`` (default 300 s) have passed since the last
write, and always when the training ends or is interrupted: at paper size (hidden 513) it is
~386 MB, and the embedded data has one step per epoch. A run killed between writes resumes from
the older ``last.pt`` and replays the epochs since, which ends with the same parameters (every
random draw is restored from the checkpoint). Calling
:func:`train` again with the same settings and folder continues from ``last.pt``: on a CPU an
interrupted and resumed run ends with exactly the parameters of an uninterrupted one (GPU LSTM
kernels are not bit-reproducible, so there "as far as possible"). ``done.json`` marks a finished
training; a later call only loads the best model.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dap.core.errors import DapError
from dap.core.files import atomic_write_bytes, atomic_write_text
from dap.core.seeds import stream
from dap.engine.fit import pick_device
from dap.wiass.data import N_FREQ
from dap.wiass.examples import SpectrogramSet
from dap.wiass.model import InformedSeparator
from dap.wiass.train_settings import CheckpointMismatch, TrainResult, TrainSettings
from dap.wiass.batches import guided_attention_loss, guidance_matrix, run_model, training_side_info, validation_loss

def build_model(settings: TrainSettings) -> InformedSeparator:
    """The model of ``settings``, initialised from its seed."""
    torch.manual_seed(settings.seed)
    return InformedSeparator(n_freq=N_FREQ, hidden=settings.hidden, variant=settings.variant,
                             n_layers=settings.n_layers, output_leak=settings.output_leak)


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW (decoupled decay) or Adam with L2 decay, as ``settings.decay`` says."""
    kind = torch.optim.AdamW if settings.decay == "decoupled" else torch.optim.Adam
    return kind(model.parameters(), lr=settings.lr, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=settings.weight_decay)


# ----------------------------------------------------------------------------- checkpoints
def _save(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=False)


def _cpu_state(module_or_opt) -> dict:
    """A state dict whose tensors are CPU copies (a checkpoint that loads on any device)."""
    def cpu(x):
        if torch.is_tensor(x):
            return x.detach().cpu().clone()
        if isinstance(x, dict):
            return {k: cpu(v) for k, v in x.items()}
        if isinstance(x, list):
            return [cpu(v) for v in x]
        return x
    return cpu(module_or_opt.state_dict())


def load_best(folder: str | Path, device: str | torch.device | None = None
              ) -> tuple[InformedSeparator, dict]:
    """The best model saved in ``folder`` (eval mode) and its checkpoint record."""
    folder = Path(folder)
    device = pick_device(device)
    path = folder / "best.pt"
    if not path.is_file():
        raise DapError(f"{path}: no trained model here (train it first)")
    ck = _load(path, device)
    settings = TrainSettings(**ck["settings"])
    model = build_model(settings).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck


# ----------------------------------------------------------------------------- the loop
@dataclass
class _TrainingState:
    """Where a training stands; stored as a plain dict (same keys) in ``last.pt``'s ``"state"``.

    ``perm``: the current epoch's permutation of the training set (None between epochs);
    ``seconds``: training time spent before this call."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    perm: np.ndarray | None = None
    best_val: float = math.inf
    best_epoch: int = -1
    since_best: int = 0
    last_loss: float = math.nan
    history: list = field(default_factory=list)
    seconds: float = 0.0

    def record(self) -> dict:
        """The checkpoint's record (a shallow copy, not :func:`dataclasses.asdict`'s deep one)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def train(settings: TrainSettings, train_set: SpectrogramSet, valid_set: SpectrogramSet,
          folder: str | Path, device: str | torch.device | None = None, progress: bool = True,
          stop_after_steps: int | None = None) -> TrainResult:
    """Train (or resume, or just load) the model of ``settings`` in ``folder``.

    ``stop_after_steps`` stops this call after that many optimisation steps *in this call* and
    returns with ``status="interrupted"`` after writing ``last.pt`` (used to test resumption; an
    interruption by a signal has the same effect, minus the work since the last checkpoint).
    Returns the best model by validation loss.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    device = pick_device(device)
    _check_settings(settings, folder)
    if (folder / "done.json").exists():
        return _finished(settings, folder, device)

    run = _Training(settings, train_set, valid_set, folder, device, stop_after_steps)
    bar = _progress(progress, run.planned_steps(), run.state.global_step, settings.configuration)
    status = "done"
    while run.state.epoch < settings.epochs:
        # A run killed after its last checkpoint but before done.json: nothing left to train.
        if run.state.step_in_epoch == 0 and _budget_spent(settings, run.state):
            break
        end = run.run_epoch(bar)
        if end == "interrupted":
            status = "interrupted"
            break
        # End of an epoch (or of the step budget): validate, keep the best, checkpoint.
        run.validate(bar)
        stop = run.should_stop(budget_hit=end == "budget")
        if stop is not None or time.time() - run.written >= settings.checkpoint_seconds:
            run.checkpoint()
        if stop is not None:
            status = stop
            break
    if bar is not None:
        bar.close()
    if status == "done":
        return run.finish()
    st = run.state
    return TrainResult(run.model.eval(), settings, pd.DataFrame(st.history), st.best_epoch,
                       st.best_val, st.global_step, st.epoch, status, run.seconds(), str(device),
                       folder)


def _check_settings(settings: TrainSettings, folder: Path) -> None:
    """Write ``settings.json``, or refuse a folder whose stored settings differ."""
    settings_path = folder / "settings.json"
    if settings_path.exists():
        stored = json.loads(settings_path.read_text())
        if stored != json.loads(json.dumps(settings.as_dict())):
            raise CheckpointMismatch(f"{folder} holds a training with other settings; use another "
                                     f"folder or delete it.\nstored: {stored}\nasked: {settings.as_dict()}")
    else:
        atomic_write_text(settings_path, json.dumps(settings.as_dict(), indent=2, sort_keys=True))


class _Training:
    """One call of :func:`train`: the model, optimiser, generator and state (resumed from
    ``last.pt`` when there is one), and the steps of the loop."""

    def __init__(self, settings: TrainSettings, train_set: SpectrogramSet,
                 valid_set: SpectrogramSet, folder: Path, device: torch.device,
                 stop_after_steps: int | None) -> None:
        self.settings, self.train_set, self.valid_set = settings, train_set, valid_set
        self.folder, self.device, self.stop_after_steps = folder, device, stop_after_steps
        self.started = time.time()
        self.model = build_model(settings).to(device)
        self.optimizer = make_optimizer(self.model, settings)
        self.rng = stream(settings.seed, 7919)  # batches and training side information
        self.state = _TrainingState()
        self.last = folder / "last.pt"
        if self.last.exists():
            # Read on the CPU: the RNG state must stay a CPU tensor; load_state_dict copies the
            # model and optimiser tensors to the model's device.
            ck = _load(self.last, torch.device("cpu"))
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.rng.bit_generator.state = ck["numpy_rng"]
            torch.set_rng_state(ck["torch_rng"])
            self.state = _TrainingState(**ck["state"])
        self.written = time.time()  # when last.pt was last written (or this call started)
        self.per_epoch = math.ceil(len(train_set) / settings.batch_size)
        self.steps_here = 0  # optimisation steps in this call

    def planned_steps(self) -> int:
        planned = self.settings.epochs * self.per_epoch
        if self.settings.max_steps is not None:
            planned = min(planned, self.settings.max_steps)
        return planned

    def seconds(self) -> float:
        """Training time so far, earlier calls included."""
        return self.state.seconds + time.time() - self.started

    def checkpoint(self) -> None:
        """Write ``last.pt``: everything needed to resume exactly."""
        self.written = time.time()
        _save(self.last, {"settings": self.settings.as_dict(), "model": _cpu_state(self.model),
                          "optimizer": _cpu_state(self.optimizer),
                          "numpy_rng": self.rng.bit_generator.state,
                          "torch_rng": torch.get_rng_state(),
                          "state": {**self.state.record(), "seconds": self.seconds()}})

    def run_epoch(self, bar) -> str:
        """Train from the current position to the end of the epoch. Returns ``"epoch"`` (its last
        step done), ``"budget"`` (``max_steps`` reached) or ``"interrupted"`` (``stop_after_steps``
        reached before the epoch's last step; ``last.pt`` written). An interruption on an epoch's
        last step waits for its validation (:meth:`should_stop`)."""
        s, st = self.settings, self.state
        if st.perm is None:
            st.perm = self.rng.permutation(len(self.train_set))
        self.model.train()
        for b in range(st.step_in_epoch, self.per_epoch):
            self._step(b, bar)
            if s.max_steps is not None and st.global_step >= s.max_steps:
                return "budget"
            if (self.stop_after_steps is not None and self.steps_here >= self.stop_after_steps
                    and b + 1 < self.per_epoch):
                self.checkpoint()
                return "interrupted"
            if s.checkpoint_every and st.global_step % s.checkpoint_every == 0:
                self.checkpoint()
        return "epoch"

    def _step(self, b: int, bar) -> None:
        """One optimisation step on batch ``b`` of the epoch's permutation."""
        s, st = self.settings, self.state
        idx = st.perm[b * s.batch_size:(b + 1) * s.batch_size]
        mix, tgt, items = self.train_set.batch(idx)
        side = training_side_info(s, items, self.rng)
        pred, attention = run_model(self.model, mix, side, self.device)
        loss = F.l1_loss(pred, tgt.to(self.device))
        if s.guide_weight > 0 and attention is not None and s.kind != "ones":
            guide = guidance_matrix(side.infos, s.guide_width).to(self.device)
            loss = loss + s.guide_weight * guided_attention_loss(attention, guide)
        if not torch.isfinite(loss):
            raise DapError(f"{s.configuration}: the training loss became {float(loss)} "
                           f"at step {st.global_step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        st.global_step += 1
        st.step_in_epoch = b + 1
        st.last_loss = float(loss.detach())
        self.steps_here += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{st.last_loss:.4f}", epoch=st.epoch)

    def validate(self, bar) -> None:
        """The validation loss at the end of an epoch: ``best.pt`` when it improves, a history
        row, and the state moved to the next epoch."""
        st = self.state
        val = validation_loss(self.model, self.settings, self.valid_set, self.device)
        improved = val < st.best_val
        if improved:
            st.best_val, st.best_epoch, st.since_best = val, st.epoch, 0
            _save(self.folder / "best.pt", {"settings": self.settings.as_dict(),
                                            "model": _cpu_state(self.model), "epoch": st.epoch,
                                            "step": st.global_step, "val_loss": val})
        else:
            st.since_best += 1
        st.history.append({"epoch": st.epoch, "step": st.global_step, "train_loss": st.last_loss,
                           "val_loss": val, "best": improved})
        if bar is not None:
            bar.set_postfix(loss=f"{st.last_loss:.4f}", val=f"{val:.4f}", epoch=st.epoch)
        st.epoch, st.step_in_epoch, st.perm = st.epoch + 1, 0, None

    def should_stop(self, budget_hit: bool) -> str | None:
        """After an epoch's validation: the status the training ends with (``"done"``: step
        budget, patience or epochs used up; ``"interrupted"``: ``stop_after_steps`` reached), or
        None to go on."""
        s, st = self.settings, self.state
        patience_out = s.patience is not None and st.since_best >= s.patience
        if budget_hit or patience_out:
            return "done"
        if self.stop_after_steps is not None and self.steps_here >= self.stop_after_steps:
            return "interrupted"
        return "done" if st.epoch >= s.epochs else None

    def finish(self) -> TrainResult:
        """Mark the training finished (``done.json``, ``history.csv``) and load the best model."""
        st = self.state
        atomic_write_text(self.folder / "done.json", json.dumps(
            {"steps": st.global_step, "epochs": st.epoch, "best_epoch": st.best_epoch,
             "best_val": st.best_val, "seconds": round(self.seconds(), 2),
             "device": str(self.device)}, indent=2))
        _write_history(self.folder, st.history)
        return _finished(self.settings, self.folder, self.device)


def _budget_spent(settings: TrainSettings, state: _TrainingState) -> bool:
    """Whether the step budget or the early-stopping patience is used up."""
    if settings.max_steps is not None and state.global_step >= settings.max_steps:
        return True
    return (bool(state.history) and settings.patience is not None
            and state.since_best >= settings.patience)


def _write_history(folder: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    columns = ["epoch", "step", "train_loss", "val_loss", "best"]
    pd.DataFrame(history, columns=columns).to_csv(buf, index=False)
    atomic_write_text(folder / "history.csv", buf.getvalue())


def _finished(settings: TrainSettings, folder: Path, device: torch.device) -> TrainResult:
    """The result of a finished training, read back from its folder."""
    model, ck = load_best(folder, device)
    done = json.loads((folder / "done.json").read_text())
    history = pd.read_csv(folder / "history.csv") if (folder / "history.csv").exists() else pd.DataFrame()
    return TrainResult(model, settings, history, int(done["best_epoch"]), float(done["best_val"]),
                       int(done["steps"]), int(done["epochs"]), "done", float(done["seconds"]),
                       str(device), folder)


def _progress(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return None
    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="step", leave=True)


def is_trained(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished training."""
    return (Path(folder) / "done.json").exists() and (Path(folder) / "best.pt").exists()
