"""Full-ranking Recall@k and NDCG@k with pessimistic ties (paper 4.2, made honest).

Every item is scored for every user; history items and the padding item are excluded
(score -inf). A target's rank counts every other item scoring at least as high, so ties
count against the target and a constant scorer gets 0, not a perfect score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude: Sequence[Sequence[int]]) -> torch.Tensor:
    """scores (U, N + 1) over all items (column 0 = padding), targets (U,) -> 1-based ranks (U,)."""
    scores = scores.clone().float()
    scores[:, 0] = float("-inf")
    rows = torch.repeat_interleave(torch.arange(len(exclude)), torch.tensor([len(e) for e in exclude]))
    columns = torch.tensor([item for items in exclude for item in items], dtype=torch.long)
    scores[rows.to(scores.device), columns.to(scores.device)] = float("-inf")
    target_scores = scores.gather(1, targets.view(-1, 1))  # (U, 1)
    at_least_as_high = (scores >= target_scores).sum(dim=1) - 1  # every other item, ties included
    return at_least_as_high + 1


def recall_at(ranks: torch.Tensor, k: int) -> float:
    """Leave-one-out Recall@k (= Hit@k): the share of users whose target ranks in the top k."""
    return (ranks <= k).float().mean().item()


def ndcg_at(ranks: torch.Tensor, k: int) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 1) inside the top k, else 0."""
    gains = torch.where(ranks <= k, 1.0 / torch.log2(ranks.float() + 1), torch.zeros_like(ranks, dtype=torch.float))
    return gains.mean().item()
