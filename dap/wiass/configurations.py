"""Paper 2's experiment registry: configurations BL1 ... A3.2, their models and side information.

Section 4.3 of the paper: BL1 has no side information; BL2 is the informed model fed a sequence of
ones; M1 / M2 carry the target's magnitude, A1 / A2 / A3.1 its binary activity
(:mod:`dap.wiass.side_info` builds them). A3.2 is not trained: it is the A3.1 model evaluated with
side information circularly shifted by 100 steps.
"""

from __future__ import annotations

import numpy as np

from dap.core.seeds import stable_hash, stream
from dap.wiass.examples import Example
from dap.wiass.side_info import SideInfo, make_side_info

#: Trained configurations -> (model variant, side-information kind). BL2 is the informed model
#: fed ones; A3.2 is not trained (it is the A3.1 model evaluated with shifted side information).
CONFIGURATIONS: dict[str, tuple[str, str | None]] = {
    "BL1": ("bl1", None), "BL2": ("informed", "ones"), "M1": ("informed", "M1"),
    "M2": ("informed", "M2"), "A1": ("informed", "A1"), "A2": ("informed", "A2"),
    "A3.1": ("informed", "A3.1"),
}
#: Evaluated configurations -> the trained configuration whose model they use.
EVALUATIONS: dict[str, str] = {**{c: c for c in CONFIGURATIONS}, "A3.2": "A3.1"}


def side_kind(evaluation: str) -> str | None:
    """Side-information kind of an evaluated configuration (``"ones"`` for BL2, None for BL1)."""
    if evaluation == "A3.2":
        return "A3.2"
    if evaluation not in CONFIGURATIONS:
        raise ValueError(f"unknown configuration {evaluation!r}; choose one of {list(EVALUATIONS)}")
    return CONFIGURATIONS[evaluation][1]


def models_needed(evaluations) -> list[str]:
    """The trained configurations whose models the evaluated ``evaluations`` use, in first-use
    order without repeats (A3.2 needs A3.1's model)."""
    need = []
    for e in evaluations:
        if e not in EVALUATIONS:
            raise ValueError(f"unknown configuration {e!r}; choose from {list(EVALUATIONS)}")
        if EVALUATIONS[e] not in need:
            need.append(EVALUATIONS[e])
    return need


def ones_info(n_frames: int) -> SideInfo:
    """BL2's meaningless side information: ``N`` ones, with no alignment (all -1)."""
    return SideInfo("ones", np.ones((n_frames, 1), dtype=np.float32),
                    np.full(n_frames, -1, dtype=np.int64), np.zeros(n_frames, dtype=np.int64),
                    np.zeros(n_frames, dtype=np.int64))


def example_side_info(kind: str | None, example: Example, rng: np.random.Generator,
                      length: int = 300, threshold: float = 0.0, shift: int = 100,
                      left: int | None = None) -> SideInfo | None:
    """Side information of ``kind`` for one example (None for BL1), with its true alignment."""
    if kind is None:
        return None
    if kind == "ones":
        return ones_info(example.target_mag.shape[0])
    return make_side_info(kind, example.frames, rng, length=length, threshold=threshold,
                          shift=shift, left=left)


def fixed_side_info(kind: str | None, example: Example, seed: int, **options) -> SideInfo | None:
    """Validation / test side information: drawn once per example from (seed, example id, kind).

    A3.2 draws with A3.1's generator, so it is exactly A3.1's sequence circularly shifted.
    """
    base = "A3.1" if kind == "A3.2" else kind
    rng = stream(seed, stable_hash(example.id), stable_hash(base))
    return example_side_info(kind, example, rng, **options)
