"""Deep audio priors: the four U-Net designs of paper 1 and a harmonic-convolution U-Net.

Public API::

    DESIGNS            ("conv", "dilated", "dilated_exp", "dilated_exp_dense")
    ALL_DESIGNS        DESIGNS + ("harmonic",)
    DESIGN_LABELS      design -> row name of the paper's tables
    build_prior(design, **opts) -> nn.Module   (B, 2, F, T) -> (B, 2, F, T), F and T divisible by 4
    count_parameters(model) -> int
    dilation_schedule(design, exp_start=1) -> [(block_name, dilations), ...]
    receptive_field(design, axis="time", **opts) -> int
    get_design(name) -> Design; register_design(Design(...)); design_names()   the design registry
    HarmonicConv2d     harmonic convolution by harmonic lowering
    PhaseSplitConv2d   the priors' 3x3 conv: dilation computed on polyphase components on a CPU
"""

from dap.priors.blocks import DenseBlock, InstanceNorm2d, PhaseSplitConv2d, PlainBlock, UpStage
from dap.priors.designs import Design, DesignError, design_names, get_design, register_design
from dap.priors.harmonic import HarmonicConv2d
from dap.priors.unet import (
    ALL_DESIGNS,
    DEFAULT_WIDTHS,
    DESIGN_LABELS,
    DESIGNS,
    HARMONIC_DEFAULTS,
    UNetPrior,
    build_prior,
    count_parameters,
    dilation_schedule,
    layer_spec,
    receptive_field,
)

__all__ = [
    "ALL_DESIGNS",
    "DEFAULT_WIDTHS",
    "DESIGN_LABELS",
    "DESIGNS",
    "HARMONIC_DEFAULTS",
    "DenseBlock",
    "Design",
    "DesignError",
    "HarmonicConv2d",
    "InstanceNorm2d",
    "PhaseSplitConv2d",
    "PlainBlock",
    "UNetPrior",
    "UpStage",
    "build_prior",
    "count_parameters",
    "design_names",
    "get_design",
    "register_design",
    "dilation_schedule",
    "layer_spec",
    "receptive_field",
]
