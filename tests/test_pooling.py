import pytest
import torch

from pipeline.features.pooling import pool_patches


def grid_tokens(side: int, width: int = 2) -> torch.Tensor:
    """(1, 1 + side*side, width): CLS = -1, patch (r, c) = r * side + c in every channel."""
    patches = torch.arange(side * side, dtype=torch.float32).repeat(width, 1).T
    return torch.cat([torch.full((1, width), -1.0), patches]).unsqueeze(0)


def test_pools_quadrants_and_keeps_cls_first():
    pooled = pool_patches(grid_tokens(4), grid=2)
    assert pooled.shape == (1, 5, 2)
    assert pooled[0, 0].tolist() == [-1.0, -1.0]
    # top-left quadrant holds patches 0, 1, 4, 5 -> mean 2.5; row-major order of the pooled grid
    assert pooled[0, 1:, 0].tolist() == [2.5, 4.5, 10.5, 12.5]


def test_uneven_grid_matches_adaptive_windows():
    pooled = pool_patches(grid_tokens(16), grid=7)
    assert pooled.shape == (1, 50, 2)
    # adaptive window 0 covers rows/cols [0, 3): mean of r*16 + c over r, c < 3
    assert pooled[0, 1, 0].item() == pytest.approx(sum(r * 16 + c for r in range(3) for c in range(3)) / 9)


def test_no_pooling_when_none_or_not_larger():
    tokens = grid_tokens(7)
    assert torch.equal(pool_patches(tokens, None), tokens)
    assert torch.equal(pool_patches(tokens, 7), tokens)
    assert torch.equal(pool_patches(grid_tokens(16), None), grid_tokens(16))


def test_non_square_grid_is_refused():
    with pytest.raises(ValueError, match="square"):
        pool_patches(torch.zeros(1, 1 + 12, 4), 2)
