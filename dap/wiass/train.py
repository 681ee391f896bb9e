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
(:func:`dap.wiass.data.fixed_side_info`), so validation losses are comparable across epochs.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dap.core.errors import DapError
from dap.core.files import atomic_write_bytes, atomic_write_text
from dap.core.store import fit_id
from dap.wiass.data import (CONFIGURATIONS, N_FREQ, SpectrogramSet, example_side_info,
                            fixed_side_info)
from dap.wiass.model import InformedSeparator
from dap.wiass.side_info import alignment_matrix, stack_side_info
from dap.core.seeds import stream


#: How the weight decay rate is applied: AdamW's decoupled decay, or Adam's L2 term.
DECAYS = ("decoupled", "coupled")


class CheckpointMismatch(DapError):
    """A checkpoint folder holds a training with other settings than the ones asked for."""


@dataclass
class TrainSettings:
    """Everything that determines a trained model (its id is a hash of these).

    configuration: one of :data:`dap.wiass.data.CONFIGURATIONS` (BL1, BL2, M1, M2, A1, A2, A3.1).
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


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``cuda`` when available, else CPU (or the device asked for)."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    settings_path = folder / "settings.json"
    if settings_path.exists():
        stored = json.loads(settings_path.read_text())
        if stored != json.loads(json.dumps(settings.as_dict())):
            raise CheckpointMismatch(f"{folder} holds a training with other settings; use another "
                                     f"folder or delete it.\nstored: {stored}\nasked: {settings.as_dict()}")
    else:
        atomic_write_text(settings_path, json.dumps(settings.as_dict(), indent=2, sort_keys=True))

    if (folder / "done.json").exists():
        return _finished(settings, folder, device)

    started = time.time()
    model = build_model(settings).to(device)
    optimizer = make_optimizer(model, settings)
    rng = stream(settings.seed, 7919)  # batches and training side information
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "perm": None, "best_val": math.inf,
             "best_epoch": -1, "since_best": 0, "last_loss": math.nan, "history": [], "seconds": 0.0}
    last = folder / "last.pt"
    if last.exists():
        # Read on the CPU: the RNG state must stay a CPU tensor; load_state_dict copies the model
        # and optimiser tensors to the model's device.
        ck = _load(last, torch.device("cpu"))
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]

    written = [time.time()]  # when last.pt was last written (or this call started)

    def checkpoint() -> None:
        written[0] = time.time()
        _save(last, {"settings": settings.as_dict(), "model": _cpu_state(model),
                     "optimizer": _cpu_state(optimizer), "numpy_rng": rng.bit_generator.state,
                     "torch_rng": torch.get_rng_state(),
                     "state": {**state, "seconds": state["seconds"] + time.time() - started}})

    n = len(train_set)
    per_epoch = math.ceil(n / settings.batch_size)
    planned = settings.epochs * per_epoch
    if settings.max_steps is not None:
        planned = min(planned, settings.max_steps)
    bar = _progress(progress, planned, state["global_step"], settings.configuration)
    steps_here = 0
    status = "done"
    while state["epoch"] < settings.epochs:
        # A run killed after its last checkpoint but before done.json: nothing left to train.
        if state["step_in_epoch"] == 0 and _budget_spent(settings, state):
            break
        if state["perm"] is None:
            state["perm"] = rng.permutation(n)
        model.train()
        budget_hit = False
        for b in range(state["step_in_epoch"], per_epoch):
            idx = state["perm"][b * settings.batch_size:(b + 1) * settings.batch_size]
            mix, tgt, items = train_set.batch(idx)
            side = training_side_info(settings, items, rng)
            pred, attention = run_model(model, mix, side, device)
            loss = F.l1_loss(pred, tgt.to(device))
            if settings.guide_weight > 0 and attention is not None and settings.kind != "ones":
                guide = guidance_matrix(side.infos, settings.guide_width).to(device)
                loss = loss + settings.guide_weight * guided_attention_loss(attention, guide)
            if not torch.isfinite(loss):
                raise DapError(f"{settings.configuration}: the training loss became {float(loss)} "
                               f"at step {state['global_step']}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["global_step"] += 1
            state["step_in_epoch"] = b + 1
            state["last_loss"] = float(loss.detach())
            steps_here += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{state['last_loss']:.4f}", epoch=state["epoch"])
            budget_hit = settings.max_steps is not None and state["global_step"] >= settings.max_steps
            if budget_hit:
                break
            # (An interruption on an epoch's last step waits for its validation, below.)
            if stop_after_steps is not None and steps_here >= stop_after_steps and b + 1 < per_epoch:
                checkpoint()
                status = "interrupted"
                break
            if settings.checkpoint_every and state["global_step"] % settings.checkpoint_every == 0:
                checkpoint()
        if status == "interrupted":
            break
        # End of an epoch (or of the step budget): validate, keep the best, checkpoint.
        val = validation_loss(model, settings, valid_set, device)
        improved = val < state["best_val"]
        if improved:
            state.update(best_val=val, best_epoch=state["epoch"], since_best=0)
            _save(folder / "best.pt", {"settings": settings.as_dict(), "model": _cpu_state(model),
                                       "epoch": state["epoch"], "step": state["global_step"],
                                       "val_loss": val})
        else:
            state["since_best"] += 1
        state["history"].append({"epoch": state["epoch"], "step": state["global_step"],
                                 "train_loss": state["last_loss"], "val_loss": val, "best": improved})
        if bar is not None:
            bar.set_postfix(loss=f"{state['last_loss']:.4f}", val=f"{val:.4f}", epoch=state["epoch"])
        state.update(epoch=state["epoch"] + 1, step_in_epoch=0, perm=None)
        patience_out = settings.patience is not None and state["since_best"] >= settings.patience
        stopping = stop_after_steps is not None and steps_here >= stop_after_steps
        ends = budget_hit or patience_out or stopping or state["epoch"] >= settings.epochs
        if ends or time.time() - written[0] >= settings.checkpoint_seconds:
            checkpoint()
        if budget_hit or patience_out:
            break
        if stopping:
            status = "interrupted"
            break
    if bar is not None:
        bar.close()
    if status == "done":
        seconds = state["seconds"] + time.time() - started
        atomic_write_text(folder / "done.json", json.dumps(
            {"steps": state["global_step"], "epochs": state["epoch"], "best_epoch": state["best_epoch"],
             "best_val": state["best_val"], "seconds": round(seconds, 2), "device": str(device)},
            indent=2))
        _write_history(folder, state["history"])
        return _finished(settings, folder, device)
    return TrainResult(model.eval(), settings, pd.DataFrame(state["history"]), state["best_epoch"],
                       state["best_val"], state["global_step"], state["epoch"], status,
                       state["seconds"] + time.time() - started, str(device), folder)


def _budget_spent(settings: TrainSettings, state: dict) -> bool:
    """Whether the step budget or the early-stopping patience is used up."""
    if settings.max_steps is not None and state["global_step"] >= settings.max_steps:
        return True
    return (bool(state["history"]) and settings.patience is not None
            and state["since_best"] >= settings.patience)


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
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="step", leave=True)


def is_trained(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished training."""
    return (Path(folder) / "done.json").exists() and (Path(folder) / "best.pt").exists()
