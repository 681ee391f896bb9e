"""Building blocks of the U-Net priors: conv units, plain and dense blocks, the upsampling stage.

Every block maps ``(B, C_in, F, T)`` to a pair ``(out, skip)``:

* ``out`` (``block.out_channels`` channels) feeds the next stage of the network;
* ``skip`` (``block.skip_channels`` channels) is what a skip connection carries.

For a plain block both are the same tensor. For a dense block ``skip`` is the concatenation
*before* the 1x1 transition and ``out`` is the transition's output (REFERENCE_NOTES, "The prior").

Norm placement (a decision; the notes only say "InstanceNorm in the encoder only"): inside every
conv unit the order is conv -> InstanceNorm -> ReLU, i.e. the norm sits after *each* 3x3 conv and
before its ReLU, in both the plain and the dense blocks, and only when the block belongs to the
encoder. The dense block's transition is a bare 1x1 conv (no norm, no activation) everywhere. This is
also the order the authors' code uses.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = [
    "ConvFactory",
    "standard_conv3x3",
    "ConvUnit",
    "PlainBlock",
    "DenseBlock",
    "UpStage",
    "make_norm",
]

#: ``(in_channels, out_channels, dilation) -> module`` mapping ``(B, in, F, T) -> (B, out, F, T)``.
ConvFactory = Callable[[int, int, int], nn.Module]


def standard_conv3x3(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Conv2d:
    """3x3 conv with bias and "same" zero padding (padding = dilation), size-preserving."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation, bias=True
    )


def make_norm(channels: int, enabled: bool) -> nn.Module:
    """InstanceNorm2d without affine parameters or running statistics, or an identity."""
    if not enabled:
        return nn.Identity()
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ConvUnit(nn.Module):
    """conv -> [InstanceNorm] -> ReLU: ``(B, C_in, F, T) -> (B, C_out, F, T)``."""

    def __init__(self, conv: nn.Module, out_channels: int, norm: bool) -> None:
        super().__init__()
        self.conv = conv
        self.norm = make_norm(out_channels, norm)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class PlainBlock(nn.Module):
    """A chain of conv units, one per dilation: ``(B, C_in, F, T) -> (B, C_out, F, T)`` twice.

    Used by the three baselines (two units: conv+norm+ReLU, conv+norm+ReLU) and the harmonic prior.
    """

    dense = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...],
        norm: bool,
        conv_factory: ConvFactory = standard_conv3x3,
    ) -> None:
        super().__init__()
        chans = [in_channels] + [out_channels] * len(dilations)
        self.units = nn.ModuleList(
            ConvUnit(conv_factory(chans[i], out_channels, d), out_channels, norm)
            for i, d in enumerate(dilations)
        )
        self.transition = None
        self.out_channels = out_channels
        self.skip_channels = out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for unit in self.units:
            x = unit(x)
        return x, x

    def chain(self) -> list[nn.Module]:
        """The convs along the block's longest input->output path, in order (for receptive fields)."""
        return [u.conv for u in self.units]


class DenseBlock(nn.Module):
    """Dense block with transition.

    ``(B, C_in, F, T) -> (out (B, C_out, F, T), skip (B, C_in + n*C_out, F, T))``, n = len(dilations).

    With two dilations: ``a = unit1(x)``, ``b = unit2([a, x])``, ``skip = [b, a, x]``
    (``C_in + 2*C_out`` channels, newest features first), ``out = transition(skip)`` with a bare 1x1 conv.
    """

    dense = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...],
        norm: bool,
        conv_factory: ConvFactory = standard_conv3x3,
    ) -> None:
        super().__init__()
        self.units = nn.ModuleList(
            ConvUnit(conv_factory(in_channels + i * out_channels, out_channels, d), out_channels, norm)
            for i, d in enumerate(dilations)
        )
        self.skip_channels = in_channels + len(dilations) * out_channels
        # Transition: 1x1, dilation 1, no norm, no activation (reduces the concatenation back to out).
        self.transition = nn.Conv2d(self.skip_channels, out_channels, kernel_size=1, bias=True)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        for unit in self.units:
            h = torch.cat([unit(h), h], dim=1)
        return self.transition(h), h

    def chain(self) -> list[nn.Module]:
        # Each unit reads every earlier unit's output, so the longest path runs through all of them.
        return [u.conv for u in self.units] + [self.transition]


class UpStage(nn.Module):
    """Decoder stage: bilinear x2, 3x3 conv (dilation 1), concat the skip, block.

    ``(x (B, C_low, F/2, T/2), skip (B, C_skip, F, T)) -> (out, skip')`` of the inner block.

    ``up_relu``: the notes say "a 3x3 conv" after the upsampling; the authors' code applies no
    activation there (the conv is linear and feeds the block directly), so ``False`` is the default;
    ``True`` adds a ReLU after it.
    """

    def __init__(self, in_channels: int, out_channels: int, block: nn.Module, up_relu: bool = False) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
        self.act = nn.ReLU() if up_relu else nn.Identity()
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.act(self.conv(self.upsample(x)))
        return self.block(torch.cat([y, skip], dim=1))
