"""SASRec (Kang and McAuley, 2018) as ODMT's user encoder (paper eq. 4), one per branch.

Sequences are left-padded, so the latest item is always at the last position; learned
positions, causal attention, padding keys masked. Positions are slots counted back from
the latest item (`positions_from: latest`, the authors' code) or counted from the user's
oldest item in the window (`oldest`, RecBole's right-padded SASRec). With `oldest`, every
position of one causal pass computes exactly what that prefix alone would, as RecBole's
one-instance-per-prefix training has it; with `latest` a prefix alone sits at the last
slots, where ranking reads the user, but in the pass its targets sit at earlier ones.

The position table starts as a normal(0, initializer_range) draw, as in SASRec's
reference code and RecBole, not nn.Embedding's normal(0, 1): with item embeddings of
that small scale, unit-scale positions swamp the item after the input LayerNorm, and
an ID-only SASRec then learns barely more than position (measured in docs/results.md).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.config import PositionsFrom
from pipeline.models.transformer import Dropout, Transformer, key_padding


class SASRec(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        layers: int,
        heads: int,
        positions: int,
        dropout: float,
        layer_norm_eps: float,
        initializer_range: float = 0.02,
        positions_from: PositionsFrom = "latest",
    ):
        super().__init__()
        self.positions_from = positions_from
        self.position_embeddings = nn.Embedding(positions, hidden_size)
        nn.init.normal_(self.position_embeddings.weight, std=initializer_range)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = Dropout(dropout)
        self.transformer = Transformer(layers, hidden_size, heads, dropout, layer_norm_eps)

    def forward(self, items: torch.Tensor, valid: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        """items (B, L, d) item embeddings, valid (B, L) bool -> H (B, L, d): position p summarises items <= p.

        `outputs` (e.g. [-1] to rank) computes only those positions in the last layer.
        """
        length = items.shape[1]
        positions = torch.arange(length, device=items.device)
        if self.positions_from == "oldest":  # slot minus the left padding: 0 is the oldest item
            positions = (positions - (~valid).sum(dim=1, keepdim=True)).clamp(min=0)
        x = self.dropout(self.norm(items + self.position_embeddings(positions)))
        causal = torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
        return self.transformer(x, key_padding(valid) & causal, outputs)
