"""What produced a result: package version, git commit, machine, device and library versions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dap.core.device import device_name, device_provenance

#: The package version stamped on every row (``dap.__version__`` is this).
VERSION = "0.1.0"

_COMMIT: str | None = None


def git_commit() -> str:
    """The repository's HEAD commit (short), ``"unknown"`` outside a git checkout."""
    global _COMMIT
    if _COMMIT is None:
        try:
            out = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent, timeout=10)
            _COMMIT = out.stdout.strip() if out.returncode == 0 else "unknown"
        except (OSError, subprocess.SubprocessError):
            _COMMIT = "unknown"
    return _COMMIT


def provenance() -> dict:
    """Fields stamped on every row: package version, commit, device model, torch / CUDA / cuDNN."""
    return {"dap_version": VERSION, "git_commit": git_commit(), **device_provenance()}


def machine_description() -> str:
    """One line naming the machine (CPU / GPU), for captions and summaries."""
    import torch  # lazily: the command line imports this module before it needs torch

    if torch.cuda.is_available():
        return f"CUDA: {device_name()}"
    return f"CPU: {device_name()}, {os.cpu_count()} cores"
