"""NextItNet (Yuan et al., 2019) as a user encoder: residual blocks of dilated causal convolutions.

Each block is two causal 1-D convolutions (dilation r, then 2r), each followed by
LayerNorm and ReLU, plus a residual; the dilations cycle through `dilations` (RecBole's
defaults: kernel 3, dilations (1, 4)). Padded positions are zeroed after every
convolution, so left padding looks exactly like the convolution's own causal zero
padding and cannot change a real position's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.transformer import Dropout


class CausalConvolution(nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, d) -> (B, L, d): position p sees positions <= p only."""
        reach = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x.transpose(1, 2), (reach, 0))).transpose(1, 2)


class ResidualBlock(nn.Module):
    def __init__(self, hidden_size: int, kernel_size: int, dilation: int, layer_norm_eps: float) -> None:
        super().__init__()
        self.convolutions = nn.ModuleList(
            CausalConvolution(hidden_size, hidden_size, kernel_size, dilation=d) for d in (dilation, 2 * dilation)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size, eps=layer_norm_eps) for _ in range(2))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = x
        for convolution, norm in zip(self.convolutions, self.norms):
            h = F.relu(norm(convolution(h))) * keep
        return x + h


class NextItNet(nn.Module):
    def __init__(
        self, hidden_size: int, blocks: int, kernel_size: int, dilations: Sequence[int], dropout: float, layer_norm_eps: float
    ) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(ResidualBlock(hidden_size, kernel_size, d, layer_norm_eps) for _ in range(blocks) for d in dilations)
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, items: torch.Tensor, valid: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        """items (B, L, d), valid (B, L) -> H (B, L, d), or the `outputs` positions: position p summarises items <= p."""
        keep = valid.unsqueeze(2).to(items.dtype)
        x = self.dropout(items) * keep
        for block in self.blocks:
            x = block(x, keep)
        hidden = self.dense(x)
        return hidden if outputs is None else hidden[:, outputs]
