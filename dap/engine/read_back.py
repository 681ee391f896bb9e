"""The engine's deferred read-back: one iteration's loss and waveforms queued on the device and read by
the host later (on CUDA from pinned copies started without waiting, so the GPU never waits for the
host; on a CPU at once). :func:`dap.engine.fit.fit` keeps a queue of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Queued:
    """One iteration computed on the device and not yet read back: its loss (0-d), learning rate,
    clipped waveforms ``(S, L)`` and EMA ``(S, L)`` (None without tracking), as host tensors whose
    copies were started without waiting (CUDA: pinned memory, ``event`` marks their completion)."""

    it: int
    lr: float
    loss: torch.Tensor
    wav: torch.Tensor
    ema: torch.Tensor | None
    event: object = None

    @classmethod
    def of(cls, it: int, lr: float, loss: torch.Tensor, wav: torch.Tensor, ema: torch.Tensor | None,
           device: torch.device, lag: int) -> "Queued":
        """Queue one iteration for read-back: on CUDA pinned host copies started without waiting.

        Args:
            it, lr: the iteration and its learning rate.
            loss: scalar ``()``; wav: decoded waveforms ``(S, L)``; ema: their moving average ``(S, L)`` or None.
            device: where the fit runs; lag: iterations the host may fall behind (1: no copies on a CPU).

        Returns:
            The queued entry, read once :meth:`ready` (or after :meth:`wait`).
        """
        loss = loss.detach()
        if device.type == "cuda":
            host = [pinned_copy(t) for t in (loss, wav, ema)]
            event = torch.cuda.Event()
            event.record()
            return cls(it, lr, host[0], host[1], host[2], event)
        # CPU: read back at once (lag 1) the tensors are used as they are; later, the EMA (updated
        # in place) must be a copy
        return cls(it, lr, loss, wav, ema if ema is None or lag == 1 else ema.clone())

    def ready(self) -> bool:
        """Whether the copies are complete (never waits); False on a CPU (nothing runs ahead)."""
        return self.event is not None and self.event.query()

    def wait(self) -> None:
        if self.event is not None:
            self.event.synchronize()


def pinned_copy(t: torch.Tensor | None) -> torch.Tensor | None:
    """A non-blocking copy of ``t`` (any shape) into pinned host memory (None stays None).

    Args:
        t: a device tensor or None.

    Returns:
        A host tensor of ``t``'s shape and dtype, complete once the recorded CUDA event is.
    """
    if t is None:
        return None
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return host.copy_(t, non_blocking=True)
