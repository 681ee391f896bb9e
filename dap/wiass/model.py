"""The attention-based informed separator of paper 2 (WASPAA 2019, section 2).

Four blocks (paper Fig. 1), all time-major along the sequence axis, batch first:

* mixture encoder: 2-layer BiLSTM, ``F -> hidden`` per direction, gives ``g (B, N, 2*hidden)``;
* side-information encoder: 2-layer BiLSTM, ``D -> hidden`` per direction, gives
  ``h (B, M, 2*hidden)``;
* attention (eqs. 3-5): bilinear score ``s[n, m] = g_n^T W_s h_m`` with ``W_s (2*hidden, 2*hidden)``
  and no bias, softmax over the side-information steps ``m``, context ``c_n = sum_m a[n, m] h_m``;
* decoder: ``q1 = tanh(W_1 [c_n, g_n] + b_1)`` of size ``hidden`` (eq. 1), a 2-layer BiLSTM
  ``hidden -> hidden`` per direction, then ``relu(W_2 q2 + b_2)`` of size ``F`` (eq. 2).

The output is the target's **magnitude** itself, not a mask (the paper found masks no better).

Sizes. The paper states E = J = 513 for "the size of the encodings"; docs/wiass.md (read from
the authors' code) says 513 is the hidden size *per direction*, so the encodings are 1026 wide and
``W_s`` is 1026 x 1026. With ``hidden=513`` the model has 32,160,996 parameters (the "about 32 M"
of the notes; BL1 has 22,140,054). ``hidden`` can be made small (e.g. 64, 794,305 parameters) for
CPU runs; nothing else changes.

Variants:

* ``"informed"``: the full model above. BL2 of the paper is this variant fed a sequence of ones
  (see :func:`ones_side_info`); it is not a separate architecture.
* ``"bl1"``: no side-information encoder and no attention. The paper only says BL1 "consists of
  the mixture encoder and target decoder"; we keep the decoder exactly as in the full model and
  drop the context from eq. 1, i.e. ``q1 = tanh(W_1 g_n + b_1)`` with ``W_1 (hidden, 2*hidden)``.
  ``forward`` accepts ``side_info=None`` (anything passed is ignored) and returns
  ``attention=None``.

Padding. The paper pads M2/A* side information with the value 100 and lets the model see the
padded sequence as is (it learns "to never look at the padding values"). An optional boolean
``side_mask (B, M)`` (True = real step) excludes padding from the softmax; the project's training
passes it by default (``TrainSettings.mask_padding``), because unmasked padding became an attention
sink in small runs (docs/wiass.md).

Output. ``relu`` makes exact zeros, which PES / EPS need; but a ReLU unit that is negative for every
input gets no gradient, and with an L1 loss on zero-heavy targets whole outputs died early in small
runs. ``output_leak`` (> 0) makes the output a leaky ReLU *while training* only; in eval mode the
output is always the paper's ReLU, so evaluated predictions keep their exact zeros.
"""

from __future__ import annotations

import torch
from torch import nn

#: Paper sizes: F = 513 bins (1024-point FFT), hidden = 513 per direction, D = 1.
PAPER_N_FREQ = 513
PAPER_HIDDEN = 513
VARIANTS = ("informed", "bl1")


class InformedSeparator(nn.Module):
    """Mixture encoder + side-information encoder + attention + decoder (paper 2, section 2).

    Args:
        n_freq: F, frequency bins of the magnitude spectrogram (513 in the paper).
        hidden: LSTM hidden size per direction and size of the connection layer (513 in the paper).
        side_dim: D, feature size of the side information (1 in the paper).
        variant: ``"informed"`` (full model; also BL2) or ``"bl1"`` (no side information).
        n_layers: layers of every BiLSTM (2 in the paper).
        output_leak: negative slope of the output during training (0: ReLU, the paper's literal
            choice); evaluation always uses ReLU.
    """

    def __init__(self, n_freq: int = PAPER_N_FREQ, hidden: int = PAPER_HIDDEN, side_dim: int = 1,
                 variant: str = "informed", n_layers: int = 2, output_leak: float = 0.0) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS} "
                             "(BL2 is the 'informed' variant fed ones_side_info)")
        for name, value in (("n_freq", n_freq), ("hidden", hidden), ("side_dim", side_dim),
                            ("n_layers", n_layers)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        self.n_freq = int(n_freq)
        self.hidden = int(hidden)
        self.side_dim = int(side_dim)
        self.variant = variant
        if not 0.0 <= float(output_leak) < 1.0:
            raise ValueError(f"output_leak must be in [0, 1), got {output_leak}")
        self.output_leak = float(output_leak)
        enc = 2 * self.hidden  # width of a bidirectional encoding (E = J in the paper)

        self.mixture_encoder = nn.LSTM(self.n_freq, self.hidden, num_layers=n_layers,
                                       batch_first=True, bidirectional=True)
        if variant == "informed":
            self.side_encoder: nn.LSTM | None = nn.LSTM(
                self.side_dim, self.hidden, num_layers=n_layers, batch_first=True,
                bidirectional=True)
            # W_s of eq. 3 as a bias-free linear map: score(h_m) = W_s h_m.
            self.score: nn.Linear | None = nn.Linear(enc, enc, bias=False)
            connection_in = 2 * enc  # [c_n, g_n]
        else:
            self.side_encoder = None
            self.score = None
            connection_in = enc  # g_n only
        self.connection = nn.Linear(connection_in, self.hidden)
        self.decoder = nn.LSTM(self.hidden, self.hidden, num_layers=n_layers, batch_first=True,
                               bidirectional=True)
        self.output = nn.Linear(enc, self.n_freq)

    @property
    def informed(self) -> bool:
        """True when the model uses side information (variant ``"informed"``)."""
        return self.variant == "informed"

    def attend(self, g: torch.Tensor, h: torch.Tensor,
               side_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Bilinear attention (eqs. 3-5).

        Args:
            g: mixture encoding ``(B, N, E)``.
            h: side-information encoding ``(B, M, E)``.
            side_mask: optional bool ``(B, M)``; False steps get zero weight.
        Returns:
            context ``(B, N, E)`` and attention weights ``(B, N, M)`` (rows sum to 1).
        """
        if self.score is None:
            raise RuntimeError("variant 'bl1' has no attention")
        scores = torch.bmm(g, self.score(h).transpose(1, 2))  # (B, N, M): g_n^T W_s h_m
        if side_mask is not None:
            scores = scores.masked_fill(~side_mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, h)
        return context, weights

    def forward(self, mixture_mag: torch.Tensor, side_info: torch.Tensor | None = None,
                side_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Estimate the target magnitude.

        Args:
            mixture_mag: mixture magnitude spectrogram ``(B, N, F)`` (time-major, unlike the
                paper's ``F x N`` notation).
            side_info: ``(B, M, D)``; required for ``"informed"``, ignored by ``"bl1"``.
                Cast to the mixture's dtype. Padding (value 100) is fed as is.
            side_mask: optional bool ``(B, M)``, True where ``side_info`` is real (not padding).
        Returns:
            ``target_mag (B, N, F)`` (>= 0 from the ReLU in eval mode; slightly negative values
            are possible in training mode with ``output_leak``) and ``attention (B, N, M)`` or ``None``
            for ``"bl1"``.
        """
        if mixture_mag.dim() != 3 or mixture_mag.shape[-1] != self.n_freq:
            raise ValueError(f"mixture_mag must be (batch, frames, {self.n_freq}), "
                             f"got {tuple(mixture_mag.shape)}")
        g, _ = self.mixture_encoder(mixture_mag)  # (B, N, 2H)

        attention = None
        if self.informed:
            side_info, side_mask = self._check_side(mixture_mag, side_info, side_mask)
            h, _ = self.side_encoder(side_info)  # (B, M, 2H)
            context, attention = self.attend(g, h, side_mask)
            q1 = torch.tanh(self.connection(torch.cat([context, g], dim=-1)))
        else:
            q1 = torch.tanh(self.connection(g))
        q2, _ = self.decoder(q1)  # (B, N, 2H)
        out = self.output(q2)  # (B, N, F)
        if self.training and self.output_leak > 0:
            target_mag = nn.functional.leaky_relu(out, self.output_leak)
        else:
            target_mag = torch.relu(out)
        return target_mag, attention

    def _check_side(self, mixture_mag: torch.Tensor, side_info: torch.Tensor | None,
                    side_mask: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate side information (and mask); return them on the mixture's device/dtype."""
        if side_info is None:
            raise ValueError("variant 'informed' needs side_info (B, M, D); for the BL2 baseline "
                             "pass ones_side_info(B, M, D)")
        if side_info.dim() != 3 or side_info.shape[-1] != self.side_dim:
            raise ValueError(f"side_info must be (batch, steps, {self.side_dim}), "
                             f"got {tuple(side_info.shape)}")
        if side_info.shape[0] != mixture_mag.shape[0]:
            raise ValueError(f"batch sizes differ: mixture {mixture_mag.shape[0]}, "
                             f"side_info {side_info.shape[0]}")
        if side_info.shape[1] == 0:
            raise ValueError("side_info has no steps (M = 0)")
        side_info = side_info.to(device=mixture_mag.device, dtype=mixture_mag.dtype)
        if side_mask is not None:
            if side_mask.shape != side_info.shape[:2]:
                raise ValueError(f"side_mask must be {tuple(side_info.shape[:2])}, "
                                 f"got {tuple(side_mask.shape)}")
            side_mask = side_mask.to(device=mixture_mag.device, dtype=torch.bool)
            # A fully masked row would make the softmax 0/0 = NaN.
            if not bool(side_mask.any(dim=1).all()):
                raise ValueError("side_mask masks every step of some example")
        return side_info, side_mask


def ones_side_info(batch: int, length: int, dim: int = 1, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Meaningless side information for baseline BL2: a tensor of ones ``(batch, length, dim)``.

    The paper does not say how long BL2's sequence is; ``length = N`` (the mixture length) is the
    natural choice.
    """
    if batch < 1 or length < 1 or dim < 1:
        raise ValueError(f"batch, length and dim must be positive, got {batch}, {length}, {dim}")
    return torch.ones(batch, length, dim, device=device, dtype=dtype)
