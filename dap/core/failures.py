"""Why a fit failed, in two kinds: would it fail again, or was the machine at fault?

*Deterministic* failures belong to the fit: a diverging loss (:class:`dap.core.errors.FitDiverged`), a
bad clip or setting (any :class:`dap.core.errors.DapError`), a bug in a task. Running it again gives
the same failure, so it is recorded as a result (a failed row) and never recomputed.

*Infrastructure* failures belong to the machine: a CUDA error (often sticky: every later CUDA call
in the process fails too), an out-of-memory error on the GPU or the host, a cuDNN / cuBLAS / NCCL
error, a worker process that died. They are retried a bounded number of times and are **never**
recorded as done: a fit that keeps failing for them stops the grid with :class:`InfrastructureError`,
and a rerun (which resumes) tries it again.
"""

from __future__ import annotations

from dap.core.errors import DapError

DETERMINISTIC = "deterministic"
INFRASTRUCTURE = "infrastructure"

#: Message fragments of torch's RuntimeErrors that come from the device, not from the fit.
_INFRA_MESSAGES = ("cuda error", "cuda out of memory", "out of memory", "cudnn_status", "cudnn error",
                   "cublas_status", "cublas error", "nccl", "cuda driver", "device-side assert",
                   "an illegal memory access", "unspecified launch failure", "hip error")


class InfrastructureError(DapError, RuntimeError):
    """Fits failed for reasons of the machine (CUDA, memory, dead workers) after every retry; nothing
    was recorded for them, so rerunning the same command resumes and tries them again."""


def classify(exc: BaseException) -> str:
    """``"infrastructure"`` or ``"deterministic"`` for an exception raised by a fit."""
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(exc, DapError):
        return DETERMINISTIC  # raised on purpose with a message for a person (FitDiverged included)
    if isinstance(exc, (MemoryError, BrokenProcessPool)):
        return INFRASTRUCTURE
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return INFRASTRUCTURE
        accelerator_errors = tuple(e for e in (getattr(torch, "AcceleratorError", None),) if e is not None)
        if accelerator_errors and isinstance(exc, accelerator_errors):
            return INFRASTRUCTURE
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _INFRA_MESSAGES):
        return INFRASTRUCTURE
    return DETERMINISTIC


def release_device_memory() -> None:
    """Before a retry: give cached GPU memory back (an OOM may then not recur). No-op on a CPU."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except RuntimeError:  # a sticky CUDA error: the retry will say so
        pass
