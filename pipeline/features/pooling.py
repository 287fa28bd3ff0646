"""Bound the image token count: a ViT's patch grid pooled to a fixed grid, CLS kept first.

DINOv2 ViT-S/14 at 224 px yields 16x16 patches; pooled to 7x7 + CLS it gives the 50
tokens of CLIP ViT-B/32 that the paper used, so storage and IMT cost stay bounded.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pool_patches(tokens: torch.Tensor, grid: int | None) -> torch.Tensor:
    """(B, 1 + s*s, d) with CLS first -> (B, 1 + grid*grid, d) by adaptive average pooling.

    Unchanged when `grid` is None or the encoder's own grid is not larger.
    """
    cls, patches = tokens[:, :1], tokens[:, 1:]  # (B, 1, d), (B, s*s, d)
    batch, count, width = patches.shape
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"expected CLS + a square patch grid, got {count} patch tokens")
    if grid is None or side <= grid:
        return tokens
    image = patches.transpose(1, 2).reshape(batch, width, side, side)  # (B, d, s, s)
    pooled = F.adaptive_avg_pool2d(image, grid).flatten(2).transpose(1, 2)  # (B, grid*grid, d)
    return torch.cat([cls, pooled], dim=1)
