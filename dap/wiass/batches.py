"""What one batch feeds paper 2's model: the side information of its examples (drawn afresh for
training, fixed for validation), the guided-attention term, and the validation loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dap.wiass.configurations import example_side_info, fixed_side_info
from dap.wiass.examples import SpectrogramSet
from dap.wiass.model import InformedSeparator
from dap.wiass.side_info import alignment_matrix, stack_side_info

from dap.wiass.train_settings import TrainSettings


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
