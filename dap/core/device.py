"""Which device and precision a fit runs on, said as it is (no silent fallback, no hidden TF32).

Only torch is imported (lazily), so :mod:`benchmarks.gpu_check` can use this module on a machine
without the audio stack.

* :func:`require_gpu_for_paper`: the ``paper`` profile on a machine without a usable CUDA device
  stops with a message naming the wheel's requirements, unless ``DAP_ALLOW_CPU_PAPER=1`` says the
  CPU is wanted (weeks of fitting).
* :func:`native_bf16`: bf16 autocast only where the hardware has bf16 units (CUDA compute
  capability >= 8.0; ``torch.cuda.is_bf16_supported()`` also accepts emulation, e.g. on a T4).
* :func:`precision_mode`: sets TF32 explicitly for the fit (on CUDA, fp32 convolutions use TF32
  unless told otherwise), so the recorded precision is the one that ran: ``bf16``, ``fp32``, ``tf32``;
  and deterministic algorithms on CUDA, so that a resumed fit gives the same rows.
* :func:`precision_class`: the resolved precision and the device class (``cpu`` or the CUDA model),
  part of every fit id and row beside the code's fingerprint (:mod:`dap.core.fingerprint`).
* :func:`device_provenance`: device model and torch / CUDA / cuDNN versions for every row.
"""

from __future__ import annotations

import os
import platform
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from dap.core.errors import DapError

#: The environment variable that allows the ``paper`` profile on a CPU.
ALLOW_CPU_PAPER = "DAP_ALLOW_CPU_PAPER"
#: Lowest CUDA compute capability with native bf16 tensor cores (Ampere).
BF16_CAPABILITY = (8, 0)
#: Precisions a fit may run in (``auto`` resolves to one of the others).
PRECISIONS = ("auto", "bf16", "fp32", "tf32")


class DeviceError(DapError, RuntimeError):
    """The requested device or precision is not available on this machine."""


def cuda_requirement() -> str:
    """What the installed torch wheel needs from the machine, e.g. ``torch 2.14.1+cu130 (CUDA 13.0):
    an NVIDIA driver for CUDA 13.0 (>= 580) and a GPU of compute capability >= 7.5 (sm_75 ...)``."""
    import torch

    cuda = torch.version.cuda
    if not cuda:
        return f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch"
    archs = torch.cuda.get_arch_list() or []
    sms = sorted(int(a[3:]) for a in archs if re.fullmatch(r"sm_\d+", a))
    lowest = f"{sms[0] // 10}.{sms[0] % 10}" if sms else "?"
    driver = {"13": ">= 580", "12": ">= 525"}.get(cuda.split(".")[0], "recent enough")
    return (f"torch {torch.__version__} (CUDA {cuda}) needs an NVIDIA driver for CUDA {cuda} ({driver}, "
            f"see nvidia-smi) and a GPU of compute capability >= {lowest} (built for {', '.join(archs) or '?'})")


def cpu_allowed() -> bool:
    """Whether the user asked for the ``paper`` profile on a CPU (``DAP_ALLOW_CPU_PAPER=1``)."""
    return os.environ.get(ALLOW_CPU_PAPER, "").strip().lower() in ("1", "true", "yes")


def require_gpu_for_paper(profile: str) -> None:
    """Raise :class:`DeviceError` when ``profile`` is ``paper`` and no CUDA device is usable.

    With an old driver or an unsupported GPU ``torch.cuda.is_available()`` is simply False, and the
    paper profile would fit for weeks on the CPU; this says why instead. ``DAP_ALLOW_CPU_PAPER=1``
    (or ``run_all.sh --allow-cpu``) lets it run anyway.
    """
    if profile != "paper" or cpu_allowed():
        return
    import torch

    if torch.cuda.is_available():
        return
    raise DeviceError(f"the paper profile needs a CUDA GPU and none is usable here: {cuda_requirement()}. "
                      f"On a CPU it takes weeks; set {ALLOW_CPU_PAPER}=1 (or run_all.sh --allow-cpu) to run it anyway")


def native_bf16(device) -> bool:
    """Whether ``device`` has native bf16 kernels: CUDA compute capability >= 8.0, or a CPU whose
    oneDNN has bf16 kernels (AVX512-BF16 / AMX)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(requested: str, device) -> str:
    """The precision a fit of ``requested`` precision runs in on ``device``.

    ``auto``: bf16 where native (:func:`native_bf16`), else fp32 (exact: TF32 is never chosen
    silently). ``tf32`` exists only on CUDA GPUs of compute capability >= 8.0; ``bf16`` on a device
    without native bf16 is allowed (emulated, slow) because it was asked for.
    """
    import torch

    if requested not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    device = torch.device(device)
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested == "tf32" and not (device.type == "cuda" and native_bf16(device)):
        raise DeviceError(f"precision tf32 needs a CUDA GPU of compute capability >= 8.0; {device} has none "
                          f"(use fp32 or bf16)")
    return requested


#: The precision class of results computed in numpy (float64) on the CPU wherever the fits run: the
#: classical baselines and trivial answers.
NUMPY_PRECISION_CLASS = "numpy/cpu"


def precision_class(requested: str, device=None) -> str:
    """What decides a result's numerics besides the code, e.g. ``fp32/cpu`` or ``bf16/NVIDIA H100 80GB HBM3``:
    the precision ``requested`` resolves to on ``device`` (:func:`resolve_precision`) and the device
    class (``cpu``, or the CUDA device's model). Part of every fit id and row (docs/reference.md).

    Args:
        requested: a precision of :data:`PRECISIONS`.
        device: where the fit runs (default: CUDA when available, else the CPU).

    Returns:
        ``"<precision>/<device class>"``.
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    kind = device_name(str(device)) if device.type == "cuda" else device.type
    return f"{resolve_precision(requested, device)}/{kind}"


#: cuBLAS needs a fixed workspace for deterministic matrix products; read when its first handle is made.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


@contextmanager
def precision_mode(precision: str, device, deterministic: bool = True):
    """The numerics of one fit on CUDA, restored afterwards (nothing changes on a CPU):

    * TF32 on for ``tf32``, off otherwise (cuDNN convolutions default to TF32 on CUDA, which would
      make an "fp32" row a TF32 one);
    * ``deterministic``: deterministic cuDNN algorithms (no autotuning), torch's deterministic
      algorithms (a warning names any op without one) and a fixed cuBLAS workspace, so a repeated or
      resumed fit gives the same rows; the priors' bilinear upsampling has no deterministic CUDA
      backward and switches to an exact formula then (:class:`dap.priors.blocks.Upsample2x`).
      ``False``: cuDNN's fastest algorithms (rows may differ in the last digits between runs)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    if deterministic:  # only effective before the first cuBLAS handle; fits are a process's first CUDA work
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    old = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark,
           torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn.allow_tf32 = matmul.allow_tf32 = precision == "tf32"
    cudnn.deterministic, cudnn.benchmark = deterministic, False
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.deterministic, cudnn.benchmark = old[:4]
        torch.use_deterministic_algorithms(old[4], warn_only=old[5])


@lru_cache(maxsize=None)
def device_name(device: str = "") -> str:
    """The model of ``device`` (default: CUDA 0 when available, else the CPU), e.g. ``NVIDIA H200``
    or ``AMD EPYC 9R14 (avx2, avx512f, avx512_bf16, no AMX)``."""
    import torch

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_model()


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name and the instructions that decide precision and speed, e.g.
    ``AMD EPYC (avx2, avx512f, avx512_bf16, no AMX)``.

    The bf16 fast path's speed depends on these (AMX tiles run bf16 matmuls several times faster than
    AVX-512 bf16), so benchmarks name them. ``cpuinfo``: the text of /proc/cpuinfo (read when None);
    falls back to ``platform`` where it is absent.
    """
    info = cpuinfo
    if info is None:
        try:
            info = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags_line = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    return f"{name.group(1).strip() if name else platform.machine()} ({', '.join(precision_flags(flags))})"


#: The CPU flags that decide which precision a fit runs in and how fast: fp32 needs AVX2 at least;
#: AVX-512 with bf16 (and AMX tiles) make bf16 native (:func:`resolve_precision`).
PRECISION_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def precision_flags(flags: set[str]) -> list[str]:
    """The :data:`PRECISION_FLAGS` among ``flags``, and ``"no AMX"`` when AMX is absent."""
    isa = [f for f in PRECISION_FLAGS if f in flags]
    return isa + ([] if "amx_bf16" in flags else ["no AMX"])


@lru_cache(maxsize=None)
def device_provenance() -> dict:
    """Fields stamped on every fit row: the device model and the torch / CUDA / cuDNN versions
    (cuDNN picks different kernels per version, so numbers may differ across them)."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"device_name": device_name(), "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda or "none", "cudnn_version": str(cudnn) if cudnn else "none"}
