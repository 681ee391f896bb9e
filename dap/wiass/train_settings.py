"""The settings that determine one trained model of paper 2 (its id is a hash of them) and the
result of a training (docs/wiass.md explains each choice; :mod:`dap.wiass.train` runs it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from dap.core.errors import DapError
from dap.core.store import fit_id
from dap.wiass.configurations import CONFIGURATIONS
from dap.wiass.model import InformedSeparator

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
