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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dap.core.errors import DapError
from dap.core.files import atomic_write_bytes, atomic_write_text
from dap.core.seeds import stream
from dap.core.store import fit_id
from dap.fit import pick_device
from dap.wiass.configurations import CONFIGURATIONS, example_side_info, fixed_side_info
from dap.wiass.data import N_FREQ, SpectrogramSet
from dap.wiass.model import InformedSeparator
from dap.wiass.side_info import alignment_matrix, stack_side_info

#: How the weight decay rate is applied: AdamW's decoupled decay, or Adam's L2 term.
DECAYS = ("decoupled", "coupled")


class CheckpointMismatch(DapError):
    """A checkpoint folder holds a training with other settings than the ones asked for."""


@dataclass
class TrainSettings:
    """Everything that determines a trained model (its id is a hash of these).

    configuration: one of :data:`dap.wiass.configurations.CONFIGURATIONS` (BL1, BL2, M1, M2, A1,
    A2, A3.1).
    epochs: maximum number of epochs; patience: stop after this many epochs without a better
    validation loss (None: never); max_steps: cap on optimisation steps (None: none).
    checkpoint_every: also write ``last.pt`` every this many steps inside an epoch (None: only at
    the end of an epoch). checkpoint_seconds: at the end of an epoch, write ``last.pt`` only when
    this many seconds passed since the last write (0: every epoch); the last epoch and an
    interruption always write it. ``decay``: ``"decoupled"`` (AdamW) or ``"coupled"`` (Adam's L2, the
    paper's literal reading); ``mask_padding``: exclude padding from the attention; ``output_leak``:
    training-only leaky output slope; ``guide_weight`` / ``guide_width``: guided attention (0: off).
    ``data`` describes the data (source, split sizes, augmentation) so that
    a model trained on other data is never reused.
    """

    configuration: str
    hidden: int = 513
    n_layers: int = 2
    lr: float = 1e-4
    weight_decay: float = 1e-3
    batch_size: int = 128
    epochs: int = 1000
    patience: int | None = 100
    max_steps: int | None = None
    side_length: int = 300
    activity_threshold: float = 0.0
    seed: int = 0
    checkpoint_every: int | None = None
    checkpoint_seconds: float = 300.0
    decay: str = "decoupled"
    mask_padding: bool = True
    output_leak: float = 0.01
    guide_weight: float = 0.0
    guide_width: float = 3.0
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.configuration not in CONFIGURATIONS:
            raise ValueError(f"unknown configuration {self.configuration!r}; trained ones are "
                             f"{list(CONFIGURATIONS)} (A3.2 is the A3.1 model with shifted side info)")
        for name in ("hidden", "n_layers", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r}; choose one of {DECAYS}")
        if not (self.checkpoint_seconds >= 0):  # also refuses NaN
            raise ValueError(f"checkpoint_seconds must be >= 0 (0: every epoch), got {self.checkpoint_seconds}")
        if self.guide_weight < 0 or self.guide_width <= 0:
            raise ValueError(f"guide_weight must be >= 0 and guide_width > 0, got "
                             f"{self.guide_weight}, {self.guide_width}")

    @property
    def variant(self) -> str:
        return CONFIGURATIONS[self.configuration][0]

    @property
    def kind(self) -> str | None:
        return CONFIGURATIONS[self.configuration][1]

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("checkpoint_every")  # when checkpoints are written does not change the model
        d.pop("checkpoint_seconds")
        return d

    @property
    def id(self) -> str:
        """12-hex id of the settings: the model's folder name ends with it."""
        return fit_id(self.as_dict())

    def side_options(self) -> dict:
        return {"length": self.side_length, "threshold": self.activity_threshold}


@dataclass
class TrainResult:
    """A trained model (best validation weights loaded, eval mode) and how it was obtained."""

    model: InformedSeparator
    settings: TrainSettings
    history: pd.DataFrame
    best_epoch: int
    best_val: float
    steps: int
    epochs: int
    status: str            # "done" or "interrupted"
    seconds: float
    device: str
    folder: Path


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


# ----------------------------------------------------------------------------- side info batches
@dataclass
class SideBatch:
    """Side information of a batch: values ``(B, M, 1)``, the mask ``(B, M)`` to pass to the model
    (None unless ``mask_padding``), and the per-example :class:`SideInfo` (with the truth)."""

    values: torch.Tensor
    mask: torch.Tensor | None
    infos: list

    def to(self, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.values.to(device), None if self.mask is None else self.mask.to(device)


def _side_batch(settings: TrainSettings, infos: list) -> SideBatch:
    values, mask = stack_side_info(infos)
    return SideBatch(torch.from_numpy(values),
                     torch.from_numpy(mask) if settings.mask_padding else None, infos)


def training_side_info(settings: TrainSettings, examples, rng: np.random.Generator
                       ) -> SideBatch | None:
    """Side information for a training batch, freshly drawn (None for BL1)."""
    kind = settings.kind
    if kind is None:
        return None
    left = None
    n = examples[0].target_mag.shape[0]
    if kind in ("M2", "A1"):  # content length N for every example: one padding split per batch
        left = int(rng.integers(0, settings.side_length - n + 1))
    infos = [example_side_info(kind, e, rng, left=left, **settings.side_options()) for e in examples]
    return _side_batch(settings, infos)


def fixed_batch_side_info(settings: TrainSettings, examples, seed: int, kind: str | None = None
                          ) -> SideBatch | None:
    """Fixed (per example) side information of a validation / test batch (None for BL1)."""
    kind = settings.kind if kind is None else kind
    if kind is None:
        return None
    return _side_batch(settings, [fixed_side_info(kind, e, seed, **settings.side_options())
                                  for e in examples])


def run_model(model: InformedSeparator, mixture: torch.Tensor, side: SideBatch | None,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model on a batch ``(B, N, F)`` with its side information (mask included)."""
    if side is None:
        return model(mixture.to(device))
    values, mask = side.to(device)
    return model(mixture.to(device), values, side_mask=mask)


def guidance_matrix(infos: list, width: float) -> torch.Tensor:
    """``(B, N, M)`` weights in [0, 1]: 1 on the steps a frame's true alignment allows (its step,
    or its segment's steps when its step was deleted), decaying as a Gaussian of ``width`` steps
    away from them; 0 for frames without meaningful truth (BL2's ones)."""
    out = []
    for info in infos:
        if info.kind == "ones":
            out.append(np.zeros((info.n_frames, info.n_steps), dtype=np.float32))
            continue
        allowed = alignment_matrix(info) > 0  # (N, M)
        # distance of every step to the nearest allowed step of its frame: the last allowed step
        # at or before it and the first at or after it, by running maxima along the steps
        steps = np.broadcast_to(np.arange(info.n_steps, dtype=np.float64), allowed.shape)
        big = 10.0 * info.n_steps
        before = np.maximum.accumulate(np.where(allowed, steps, -big), axis=1)
        after = -np.maximum.accumulate(np.where(allowed, -steps, -big)[:, ::-1], axis=1)[:, ::-1]
        dist = np.minimum(steps - before, after - steps)
        out.append(np.exp(-0.5 * (dist / width) ** 2).astype(np.float32))
    return torch.from_numpy(np.stack(out))


def guided_attention_loss(attention: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
    """Mean over frames of the attention mass outside the guidance band: ``1 - sum_m a * G``.

    attention, guidance: ``(B, N, M)``. 0 when every frame attends inside its band."""
    return (1.0 - (attention * guidance).sum(dim=-1)).mean()


@torch.no_grad()
def validation_loss(model: InformedSeparator, settings: TrainSettings, valid: SpectrogramSet,
                    device: torch.device) -> float:
    """Mean L1 loss over the validation examples (fixed side information)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(valid), settings.batch_size):
        idx = range(start, min(start + settings.batch_size, len(valid)))
        mix, tgt, items = valid.batch(idx)
        pred, _ = run_model(model, mix, fixed_batch_side_info(settings, items, settings.seed), device)
        total += float(F.l1_loss(pred, tgt.to(device), reduction="sum"))
        count += tgt.numel()
    return total / count


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
