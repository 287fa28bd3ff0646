"""GRU4Rec (Hidasi et al., 2016) as a user encoder: a GRU over the item embeddings.

Sequences arrive left-padded (the latest item last, as SASRec wants them). A GRU read
left to right would fold the padding into its state, so each row is turned
right-padded, run (the padding then comes after every real item and cannot reach
them), and turned back.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.transformer import Dropout


def align(valid: torch.Tensor, to_left: bool) -> torch.Tensor:
    """(B, L) gather index moving each row's real items to the end (to_left) or the start of the row."""
    length = valid.shape[1]
    padding = (~valid).sum(dim=1, keepdim=True)
    shift = -padding if to_left else padding
    return (torch.arange(length, device=valid.device) + shift) % length


class GRU4Rec(nn.Module):
    def __init__(self, hidden_size: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=layers, batch_first=True)
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, items: torch.Tensor, valid: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        """items (B, L, d), valid (B, L) -> H (B, L, d), or the `outputs` positions: position p summarises items <= p."""
        gather = align(valid, to_left=False).unsqueeze(2).expand_as(items)  # left-padded -> right-padded
        states, _ = self.gru(self.dropout(items).gather(1, gather))
        hidden = self.dense(states).gather(1, align(valid, to_left=True).unsqueeze(2).expand_as(items))
        return hidden if outputs is None else hidden[:, outputs]
