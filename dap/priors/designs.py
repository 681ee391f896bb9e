"""The registry of prior designs: what distinguishes one U-Net prior from another.

Every design shares the U-Net topology of :class:`dap.priors.unet.UNetPrior`; a :class:`Design` says
which block it uses (plain or dense), the dilations of each block's two 3x3 convs, which convolution
builds them, and its default options. ``get_design(name)`` returns one; ``register_design`` adds one,
after which :func:`dap.priors.build_prior`, the grids and the studies accept its name (a design's
table row is its ``label``). docs/extending.md walks through adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from dap.core.errors import DapError
from dap.core.registry import Registry
from dap.priors.blocks import ConvFactory, standard_conv3x3
from dap.priors.harmonic import HarmonicConv2d

#: ``dilations(levels, exp_start) -> [(d1, d2), ...]``: one pair per block, encoder then decoder
#: (``2 * levels - 1`` pairs).
Dilations = Callable[[int, int], list[tuple[int, int]]]


#: Widths of the paper's priors (channels per U-Net level).
DEFAULT_WIDTHS: tuple[int, ...] = (35, 70, 140)


class DesignError(DapError, ValueError):
    """An unknown design name, or a design registered twice."""


def constant(d: int) -> Dilations:
    """The same dilation ``d`` in every block."""
    return lambda levels, exp_start: [(d, d)] * (2 * levels - 1)


def exponential(levels: int, exp_start: int) -> list[tuple[int, int]]:
    """Encoder level l gets ``(s*4**l, 2*s*4**l)`` with ``s = exp_start``; decoder block ``up_l``
    mirrors encoder level l reversed (so the decoder starts where the bottleneck ended)."""
    enc = [(exp_start * 4**l, 2 * exp_start * 4**l) for l in range(levels)]
    return enc + [tuple(reversed(enc[l])) for l in range(levels - 1, 0, -1)]


@dataclass(frozen=True)
class Design:
    """One prior design.

    name: the id used in settings and rows; label: its row name in the tables;
    dilations: see :data:`Dilations`; dense: dense blocks with transitions instead of plain blocks;
    conv: ``conv(options) -> ConvFactory`` building the block convs from the resolved options
    (None: :func:`dap.priors.blocks.standard_conv3x3`); defaults: option defaults (``widths``,
    ``norm``, ...); options: the options this design accepts beyond the common ones.
    """

    name: str
    label: str
    dilations: Dilations
    dense: bool = False
    conv: Callable[[dict], ConvFactory] | None = None
    defaults: dict[str, Any] = field(default_factory=lambda: {"widths": DEFAULT_WIDTHS, "norm": "encoder"})
    options: frozenset[str] = frozenset()

    def conv_factory(self, options: dict) -> ConvFactory:
        """The factory of the block convs under the resolved ``options``."""
        return standard_conv3x3 if self.conv is None else self.conv(options)


_REGISTRY: Registry[Design] = Registry("design", DesignError)
#: Row names of the tables: each registered design's label.
DESIGN_LABELS: dict[str, str] = {}


def register_design(design: Design, replace: bool = False) -> Design:
    """Add ``design`` to the registry (``replace``: overwrite one of the same name). Returns it."""
    _REGISTRY.register(design.name, design, replace)
    DESIGN_LABELS[design.name] = design.label
    return design


def get_design(name: str) -> Design:
    """The registered design ``name``; :class:`DesignError` listing the known ones otherwise."""
    return _REGISTRY.lookup(name)


def design_names() -> tuple[str, ...]:
    """Every registered design, in registration order (the paper's four first)."""
    return tuple(_REGISTRY)


def _harmonic_conv(options: dict) -> ConvFactory:
    kernel_size, anchor, anchors = options["kernel_size"], options["anchor"], options["anchors"]

    def conv_factory(cin: int, cout: int, dilation: int = 1) -> nn.Module:
        # Harmonic taps replace the dilation along frequency; time taps are contiguous.
        return HarmonicConv2d(cin, cout, kernel_size=kernel_size, anchor=anchor, anchors=anchors)

    return conv_factory


#: Defaults of the harmonic U-Net. The notes: "the harmonic U-Net used widths 35 / 70 with
#: InstanceNorm and ReLU"; the original layers used kernel 7 and anchor 7. Widths (35, 70) give a
#: two-level U-Net (one pooling). Along frequency we keep the original 7 taps at anchor 7 (bin f is
#: read as the 7th harmonic: taps f/7, 2f/7, ..., f), along time 3 taps instead of 7 to keep the
#: layer affordable on CPU (the lowered conv has C*7*3 taps per output, ~2.3x a 3x3 conv).
#: InstanceNorm in every block (the notes do not restrict it to the encoder for this model).
HARMONIC_DEFAULTS: dict[str, Any] = {"widths": (35, 70), "kernel_size": (7, 3), "anchor": 7, "anchors": None,
                                     "norm": "all"}

for _design in (
    Design("conv", "Convolution", constant(1)),
    Design("dilated", "Dilated Conv.", constant(4)),
    Design("dilated_exp", "Dilated Conv. (exp)", exponential),
    Design("dilated_exp_dense", "Dilated Conv. (exp) + Dense", exponential, dense=True),
    Design("harmonic", "Harmonic Conv.", constant(1), conv=_harmonic_conv, defaults=HARMONIC_DEFAULTS,
           options=frozenset({"kernel_size", "anchor", "anchors"})),
):
    register_design(_design)
