"""Harmonic convolution (Zhang et al., ICLR 2020), computed by harmonic lowering (Takeuchi et al. 2020).

Definition, for a spectrogram ``X[c, f, t]`` (F bins, T frames), a kernel ``W[o, c, k, tau]`` with
``K_f`` frequency taps (``k = 1..K_f``), ``K_t`` (odd) time taps and an *anchor* ``n``::

    Y[o, f, t] = b[o] + sum_c sum_{k=1..K_f} sum_tau W[o, c, k, tau] * X[c, k*f/n, t + tau]

with ``tau`` running over ``-(K_t//2) .. K_t//2``. Along time this is an ordinary centred kernel with
zero padding; along frequency it reads the harmonic series of bin ``f``, treating ``f`` as the n-th
harmonic (taps ``f/n, 2f/n, ..., K_f*f/n``). There is no frequency padding; the output has the
input's size.

Conventions chosen here (the definition leaves them open):

* Fractional bins use linear interpolation of the spectrogram **extended with zeros above the top
  bin**: ``X[c, p] = (1 - w) X[c, i] + w X[c, i + 1]`` with ``i = floor(p)``, ``w = p - i`` and
  ``X[c, i] = 0`` for ``i > F - 1``. So a position between the last bin and the (absent) next one
  fades linearly towards zero rather than jumping to zero; positions ``p >= F`` read exactly zero.
  This keeps the operator continuous in ``p`` and is the standard linear interpolation of a
  zero-extended signal.
* Positions ``k*f/n`` are computed exactly in integers (``i = (k*f) // n``, ``w = (k*f mod n) / n``),
  so integer harmonics never suffer floating-point floor errors.

Fast form ("harmonic lowering"): for each k build the frequency-zoomed copy
``Z_k[c, f, t] = X[c, k*f/n, t]`` (one sparse interpolation matrix applied along F, built once per
(F, device, anchor) and cached), stack the copies as channels ``(B, C*K_f, F, T)`` and run one
ordinary ``conv2d`` with a ``(1, K_t)`` kernel. This is exact, not an approximation: the sum over k
becomes a sum over input channels of a standard convolution.

Mixture of anchors (optional, ``anchors=(n1, n2, ...)``): the layer computes
``sum_m a_m * HC_{n_m}(X; W) + b`` with **one shared kernel** ``W`` and mixing weights
``a = softmax(mix_logits)`` learned per layer (initialised uniform). Because harmonic convolution is
linear in X, the mix is applied to the lowered copies before the single convolution, so a mixture
costs extra lowering products but no extra convolutions. (Zhang et al. mixed anchors with learned
weights; sharing the kernel is our choice: it keeps the parameter count of a single-anchor layer.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HarmonicConv2d", "harmonic_lowering"]


def _lowering_matrix(n_bins: int, n_taps: int, anchor: int, device: torch.device) -> torch.Tensor:
    """Sparse interpolation matrix of the K_f zoomed copies.

    Returns a coalesced sparse COO float32 tensor ``M`` of shape ``(K_f * F, F)`` with
    ``Z_k[f] = sum_g M[(k-1)*F + f, g] * X[g]``: at most two non-zeros per row, ``1 - w`` at bin
    ``i = floor(k*f/n)`` and ``w`` at ``i + 1``, where ``w = k*f/n - i``. Entries that would point at
    bins ``>= F`` are dropped, which is exactly "past the top bin reads zero".
    """
    k = torch.arange(1, n_taps + 1, dtype=torch.int64).unsqueeze(1)  # (K_f, 1)
    f = torch.arange(n_bins, dtype=torch.int64).unsqueeze(0)  # (1, F)
    num = k * f  # position k*f/n == num / n, kept exact in integers
    i0 = torch.div(num, anchor, rounding_mode="floor")
    w = (num - i0 * anchor).to(torch.float64) / anchor
    rows = torch.arange(n_taps * n_bins, dtype=torch.int64)
    rows = torch.cat([rows, rows])
    cols = torch.cat([i0.reshape(-1), i0.reshape(-1) + 1])
    vals = torch.cat([(1.0 - w).reshape(-1), w.reshape(-1)])
    keep = (cols < n_bins) & (vals != 0)  # drop out-of-range bins and exact-integer positions' zero weight
    m = torch.sparse_coo_tensor(
        torch.stack([rows[keep], cols[keep]]),
        vals[keep].to(torch.float32),
        (n_taps * n_bins, n_bins),
        check_invariants=True,  # one-off cost; also keeps torch from warning that checks are off
    )
    return m.coalesce().to(device)


def harmonic_lowering(x: torch.Tensor, matrix: torch.Tensor, n_taps: int) -> torch.Tensor:
    """Frequency-zoomed copies of ``x``.

    Args:
        x: ``(B, C, F, T)``.
        matrix: from :func:`_lowering_matrix` for this ``F`` (and anchor).
        n_taps: K_f.
    Returns:
        ``(B, C, K_f, F, T)`` float32 with ``[:, c, k-1, f, t] = X[c, k*f/n, t]`` (interpolated, zero
        above bin F-1).

    Why a sparse matmul rather than a gather (``index_select``) + lerp: both are exact, but the
    gather's backward is a scatter-add, which on CPU was ~3x slower than the sparse product (whose
    backward is another sparse product). It runs in float32 (sparse bf16 kernels are patchy); the
    following convolution still runs in bf16 under autocast.
    """
    b, c, n_bins, t = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = x.float().permute(2, 0, 1, 3).reshape(n_bins, b * c * t)  # F on rows
        z = torch.sparse.mm(matrix, xf)  # (K_f * F, B*C*T)
    return z.view(n_taps, n_bins, b, c, t).permute(2, 3, 0, 1, 4)


class HarmonicConv2d(nn.Module):
    """Harmonic convolution layer, ``(B, C_in, F, T) -> (B, C_out, F, T)``.

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: ``(K_f, K_t)`` (an int means square); ``K_t`` must be odd (centred time taps).
        anchor: n, the harmonic index the output bin is treated as (``anchor=1``: taps f, 2f, 3f...).
        bias: learnable bias per output channel.
        anchors: optional tuple of anchors to mix (see module docstring); overrides ``anchor``.

    Attributes:
        weight: ``(C_out, C_in, K_f, K_t)``; ``weight[:, :, k-1, :]`` is the tap at harmonic k.
        bias: ``(C_out,)`` or None.
        mix_logits: ``(len(anchors),)`` only when mixing several anchors.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = (3, 3),
        anchor: int = 1,
        bias: bool = True,
        anchors: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        k_f, k_t = (int(v) for v in kernel_size)
        if k_f < 1 or k_t < 1 or k_t % 2 == 0:
            raise ValueError(f"kernel_size must be (K_f >= 1, odd K_t >= 1), got {kernel_size}")
        anchors = tuple(int(a) for a in anchors) if anchors else (int(anchor),)
        if any(a < 1 for a in anchors):
            raise ValueError(f"anchors must be positive integers, got {anchors}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (k_f, k_t)
        self.anchors = anchors
        self.anchor = anchors[0]
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k_f, k_t))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.mix_logits = nn.Parameter(torch.zeros(len(anchors))) if len(anchors) > 1 else None
        # (F, device, anchor) -> sparse lowering matrix; a plain dict so it stays out of state_dict
        # and is rebuilt lazily for each spectrogram height and device the layer meets.
        self._matrices: dict[tuple[int, str, int], torch.Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same scheme as ``nn.Conv2d`` (fan-in = C_in * K_f * K_t)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def _get_matrix(self, n_bins: int, device: torch.device, anchor: int) -> torch.Tensor:
        key = (n_bins, str(device), anchor)
        if key not in self._matrices:
            self._matrices[key] = _lowering_matrix(n_bins, self.kernel_size[0], anchor, device)
        return self._matrices[key]

    def lowered(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, F, T) -> (B, C*K_f, F, T)``: the stacked zoomed copies (anchor-mixed if several)."""
        b, c, n_bins, t = x.shape
        k_f = self.kernel_size[0]
        if self.mix_logits is None:
            z = harmonic_lowering(x, self._get_matrix(n_bins, x.device, self.anchor), k_f)
        else:
            mix = torch.softmax(self.mix_logits.float(), dim=0)
            z = sum(
                mix[m] * harmonic_lowering(x, self._get_matrix(n_bins, x.device, a), k_f)
                for m, a in enumerate(self.anchors)
            )
        # Channel order c*K_f + (k-1) matches weight.reshape(O, C*K_f, 1, K_t). Back to the input's
        # dtype so a bf16 network stays bf16.
        return z.reshape(b, c * k_f, n_bins, t).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Harmonic convolution: harmonic lowering, then a conv along time.

        Args:
            x: ``(B, C_in, F, T)``.

        Returns:
            ``(B, C_out, F, T)``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"HarmonicConv2d expects (B, {self.in_channels}, F, T), got {tuple(x.shape)}"
            )
        k_f, k_t = self.kernel_size
        w = self.weight.reshape(self.out_channels, self.in_channels * k_f, 1, k_t)
        return F.conv2d(self.lowered(x), w, self.bias, padding=(0, k_t // 2))

    def extra_repr(self) -> str:
        anchors = f"anchors={self.anchors}" if len(self.anchors) > 1 else f"anchor={self.anchor}"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {anchors}, "
            f"bias={self.bias is not None}"
        )
