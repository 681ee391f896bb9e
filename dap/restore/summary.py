"""What :func:`dap.restore.restore_file` did: its own module because both the pipeline and the
streaming passes fill it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dap.restore.reading import AudioInfo


@dataclass
class RestoreReport:
    """What :func:`restore_file` did."""

    input: AudioInfo
    output: Path
    task: str
    format: str
    subtype: str
    windows: int
    fits: int
    skipped_silent: int = 0
    failed: list[str] = field(default_factory=list)  # windows left unprocessed, with the reason
    seconds: float = 0.0

    def summary(self) -> str:
        i = self.input
        verb = {"denoise": "denoised", "inpaint": "inpainted"}[self.task]
        text = (f"{self.output}: {verb} {i.seconds:.2f} s, {i.channels} channel(s) at {i.sr} Hz "
                f"({self.format} {self.subtype}); {self.fits} fit(s) over {self.windows} window(s) in "
                f"{self.seconds:.1f} s")
        if self.skipped_silent:
            text += f"; {self.skipped_silent} silent window(s) left silent"
        if self.failed:
            text += f"; {len(self.failed)} fit(s) diverged, their windows left as the input"
        return text
