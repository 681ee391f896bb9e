"""The explorer's choices (:class:`Choices`), what it offers, and one sentence on what a budget costs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from dap.config.schedule import PAPER_SCHEDULE
from dap.core.audio import SAMPLE_RATE
from dap.core.errors import DapError
from dap.priors import DEFAULT_WIDTHS, DESIGN_LABELS, DESIGNS, build_prior, count_parameters

#: Network sizes offered in the UI: widths per U-Net level. ``laptop`` is ours (not the paper's):
#: about a quarter of the paper's parameters and a third of its cost per iteration.
SIZES: dict[str, tuple[int, ...]] = {"laptop": (16, 32, 64), "paper": DEFAULT_WIDTHS, "tiny": (4, 8, 16)}
SIZE_NOTES = {
    "laptop": "laptop size (widths 16/32/64, our choice for a CPU; the paper uses 35/70/140)",
    "paper": "the paper's size (widths 35/70/140)",
    "tiny": "tiny (widths 4/8/16): seconds, for checking that things run, not for listening",
}
#: Clip lengths offered (seconds); each is a multiple of 256 samples at 16 kHz.
CLIP_SECONDS = (0.256, 0.512, 1.024, 2.048)
TASKS = ("denoise", "inpaint")
OUTPUT_RULES = ("last", "ema", "oracle")
OUTPUT_NOTES = {"last": "the last iterate (blind)", "ema": "moving average of the iterates (blind)",
                "oracle": "the best iterate against the clean clip (needs the answer)"}
#: Clip lengths are multiples of this many samples (STFT hop 64 x two poolings of the U-Nets).
LENGTH_MULTIPLE = 256


class ExplorerError(DapError, ValueError):
    """A setting of the explorer is invalid; the message says which and what is allowed."""


@dataclass(frozen=True)
class Choices:
    """The explorer's choices.

    dataset: an embedded data set (``digits``, ``speech``, ``piano``, ``drums``, ``noise``,
    ``stems`` = the mixture) or ``"upload"``; clip_index: position among the data set's clips
    sorted by id; seconds: length of the excerpt (the loudest window of the clip); task:
    ``denoise`` (add Gaussian noise of std ``sigma`` to the peak-normalised clip; ``sigma = 0``
    fits the clip as it is, with no clean reference) or ``inpaint`` (``n_gaps`` gaps of ``gap_s``
    seconds); design: one of :data:`dap.priors.DESIGNS`; widths: U-Net widths (see :data:`SIZES`);
    iterations: budget per design; update_every: redraw period in iterations; output: which
    selection rule the "restored" player plays at the end.
    """

    dataset: str = "digits"
    clip_index: int = 0
    seconds: float = 0.512
    task: str = "denoise"
    sigma: float = 0.1
    n_gaps: int = 1
    gap_s: float = 0.1
    design: str = "dilated_exp"
    widths: tuple[int, ...] = SIZES["laptop"]
    iterations: int = 200
    update_every: int = 10
    seed: int = 0
    precision: str = "auto"
    lr: float = PAPER_SCHEDULE.lr
    output: str = "last"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, not {self.task!r}")
        if self.design not in DESIGNS:
            problems.append(f"design must be one of {DESIGNS}, not {self.design!r}")
        if self.output not in OUTPUT_RULES:
            problems.append(f"output must be one of {OUTPUT_RULES}, not {self.output!r}")
        if not (self.iterations >= 1):
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if not (self.update_every >= 1):
            problems.append(f"update_every must be >= 1, got {self.update_every}")
        if not (0 <= self.sigma <= 1):
            problems.append(f"sigma must be in [0, 1] (the clip peaks at 1), got {self.sigma}")
        if self.seconds * SAMPLE_RATE < LENGTH_MULTIPLE * 16:
            problems.append(f"seconds must be at least {LENGTH_MULTIPLE * 16 / SAMPLE_RATE} s, got {self.seconds}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            problems.append(f"widths must be three positive channel counts, got {self.widths}")
        if problems:
            raise ExplorerError("; ".join(problems))

    @property
    def samples(self) -> int:
        """Clip length in samples, rounded to a multiple of 256."""
        return clip_samples(self.seconds)

    @property
    def size_name(self) -> str:
        """``laptop`` / ``paper`` / ``tiny``, or ``widths a/b/c`` for other widths."""
        for name, w in SIZES.items():
            if w == self.widths:
                return name
        return "widths " + "/".join(map(str, self.widths))

    @property
    def has_reference(self) -> bool:
        """Whether a clean reference exists (not for denoising with sigma 0: the clip as it is)."""
        return self.task == "inpaint" or self.sigma > 0

    def with_(self, **changes) -> "Choices":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def from_params(cls, p) -> "Choices":
        """Choices from a resolved profile (its settings named as the fields; others ignored)."""
        return cls(**{k: getattr(p, k) for k in cls.__dataclass_fields__ if hasattr(p, k)})

    def as_dict(self) -> dict:
        return asdict(self)


def clip_samples(seconds: float) -> int:
    """``seconds`` at 16 kHz rounded to a multiple of 256 samples (at least 4096)."""
    return max(16, int(round(seconds * SAMPLE_RATE / LENGTH_MULTIPLE))) * LENGTH_MULTIPLE


def describe_budget(settings: Choices, designs: tuple[str, ...] | None = None) -> str:
    """One honest sentence on what the budget is (size, clip, iterations) and what it is not."""
    designs = designs or (settings.design,)
    params = ", ".join(f"{DESIGN_LABELS[d]} {count_parameters(build_prior(d, widths=settings.widths)) / 1e3:.0f}k"
                       for d in designs)
    frames = settings.samples // 64
    return (f"{settings.iterations} iterations per design, {SIZE_NOTES.get(settings.size_name, settings.size_name)}; "
            f"parameters: {params}; a {settings.samples / SAMPLE_RATE:.3f} s clip (STFT 2 x 512 x {frames}). "
            f"The paper fits 2000 iterations at widths 35/70/140 on a GPU: at a few hundred iterations the "
            f"SNR is usually still rising, so read the shapes and the ranking, not the paper's numbers.")
