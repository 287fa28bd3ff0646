"""The standard Transformer layer both IMT and SASRec stack (FFN 4d, ReLU, dropout), post-LN as the
authors' code, or pre-LN (Xiong et al., 2020: the residual stream is never normalised, so
gradients near the output stay bounded without warm-up), with a final LayerNorm.

Attention takes a boolean mask (True = may attend), so the IMT's ID mask and SASRec's
causal/padding masks are the same mechanism, computed by PyTorch's
scaled_dot_product_attention or written out (`model.attention`).
When the caller reads only a few positions (the IMT reads three CLS/ID tokens of ~80),
the last layer computes only those queries: keys and values still come from every
position, so the outputs are identical and the IMT does ~40% fewer FLOPs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.config import Attention


class Dropout(nn.Dropout):
    """nn.Dropout's exact distribution, drawn ~4x faster on CPU, where dropout was a third of a training step.

    torch's CPU dropout draws one uniform per element. Here the dropped positions are
    drawn directly: K ~ Poisson(n * lam) uniform positions with lam = -ln(1 - p) give
    every element an independent Poisson(lam) hit count, so each is dropped
    independently with probability 1 - exp(-lam) = p, from only ~0.1 n random numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu":
            return super().forward(x)
        n = x.numel()
        hits = int(torch.poisson(torch.tensor(n * -math.log1p(-self.p), dtype=torch.float64)))
        return ScaleAndDrop.apply(x, torch.randint(n, (hits,)), 1 / (1 - self.p))


class ScaleAndDrop(torch.autograd.Function):
    """x * scale with the `dropped` flat positions zeroed; the gradient gets the same.

    The backward pass keeps the positions (~0.1 n indices) instead of an n-element mask:
    a fifth of the memory, and each pass is one multiplication and one scattered fill.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dropped: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(dropped)
        ctx.scale = scale
        return scale_and_drop(x, dropped, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (dropped,) = ctx.saved_tensors
        return scale_and_drop(grad, dropped, ctx.scale), None, None


def scale_and_drop(x: torch.Tensor, dropped: torch.Tensor, scale: float) -> torch.Tensor:
    return (x * scale).reshape(-1).index_fill_(0, dropped, 0).view(x.shape)


class MultiHeadAttention(nn.Module):
    """Attention with a boolean mask and dropout on the attention probabilities.

    `implementation` (model.attention, set by build_model): "explicit" writes softmax(q k^T
    / sqrt(d_h)) v out, "sdpa" calls scaled_dot_product_attention, whose fused kernels are
    the fast ones on CUDA and in inference. "auto" writes it out only when training on
    CPU: SDPA's CPU path with dropout copies q, k and v into new layouts and draws a
    uniform per probability, measured 2.3x slower forward + backward at the IMT's shapes.
    """

    implementation: Attention = "auto"

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.probability_dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, queries: list[int] | None = None) -> torch.Tensor:
        """x (B, L, d), allowed (B, L, L) -> (B, Q, d) for the query positions (all L if None)."""
        width = x.shape[2]
        if queries is None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, queries], weight[:width], bias[:width])
            k, v = F.linear(x, weight[width:], bias[width:]).chunk(2, dim=-1)
            allowed = allowed[:, queries]
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, h, ·, d/h)
        allowed = allowed.unsqueeze(1)
        if self.explicit(x.device):
            scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
            attended = self.probability_dropout(scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)) @ v
        else:
            dropout = self.probability_dropout.p if self.training else 0.0
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        return self.out(attended.transpose(1, 2).flatten(2))  # (B, Q, d)

    def explicit(self, device: torch.device) -> bool:
        if self.implementation == "auto":
            return self.training and device.type == "cpu"
        return self.implementation == "explicit"


class TransformerLayer(nn.Module):
    """Post-LN x = LN(x + Attn(x)); x = LN(x + FFN(x)), as in the authors' IMT and SASRec; or pre-LN
    x = x + Attn(LN(x)); x = x + FFN(LN(x))."""

    def __init__(self, hidden_size: int, heads: int, dropout: float, layer_norm_eps: float, norm_first: bool = False) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attention = MultiHeadAttention(hidden_size, heads, dropout)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), nn.ReLU(), Dropout(dropout), nn.Linear(4 * hidden_size, hidden_size)
        )
        self.feed_forward_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, queries: list[int] | None = None) -> torch.Tensor:
        """x (B, L, d); allowed (B, L, L) bool: query i may attend to key j -> (B, Q, d)."""
        residual = x if queries is None else x[:, queries]
        if self.norm_first:
            x = residual + self.dropout(self.attention(self.attention_norm(x), allowed, queries))
            return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        x = self.attention_norm(residual + self.dropout(self.attention(x, allowed, queries)))
        return self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))


class Transformer(nn.Module):
    def __init__(self, layers: int, hidden_size: int, heads: int, dropout: float, layer_norm_eps: float, norm_first: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(hidden_size, heads, dropout, layer_norm_eps, norm_first) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        """x (B, L, d) -> (B, L, d), or (B, len(outputs), d) when only those positions are read."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, allowed, outputs if i == last else None)
        return self.final_norm(x)


def key_padding(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool of real tokens -> (B, L, L): every query sees the real keys, and always itself.

    Seeing itself keeps a padding query's softmax defined; its output is never used.
    """
    length = valid.shape[1]
    return valid.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=valid.device)
