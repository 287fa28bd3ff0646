"""The standard Transformer layer both IMT and SASRec stack (post-LN, FFN 4d, ReLU, dropout).

Attention is PyTorch's scaled_dot_product_attention with a boolean mask (True = may
attend), so the IMT's ID mask and SASRec's causal/padding masks are the same mechanism.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, L, w/h)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed.unsqueeze(1), dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, L, w/h)
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class TransformerLayer(nn.Module):
    """x = LN(x + Attn(x)); x = LN(x + FFN(x)), as in the authors' IMT and SASRec."""

    def __init__(self, hidden_size: int, heads: int, dropout: float, layer_norm_eps: float) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(hidden_size, heads, dropout)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * hidden_size, hidden_size)
        )
        self.feed_forward_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, L, d); allowed (B, L, L) bool: query i may attend to key j."""
        x = self.attention_norm(x + self.dropout(self.attention(x, allowed)))
        return self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))


class Transformer(nn.Module):
    def __init__(self, layers: int, hidden_size: int, heads: int, dropout: float, layer_norm_eps: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(hidden_size, heads, dropout, layer_norm_eps) for _ in range(layers))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, allowed)
        return x


def key_padding(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool of real tokens -> (B, L, L): every query sees the real keys, and always itself.

    Seeing itself keeps a padding query's softmax defined; its output is never used.
    """
    length = valid.shape[1]
    return valid.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=valid.device)
