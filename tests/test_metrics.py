import math

import pytest
import torch

from pipeline.evaluation.metrics import ndcg_at, pessimistic_ranks, recall_at


def test_ranks_count_ties_against_the_target_and_skip_excluded_items():
    scores = torch.tensor(
        [
            [9.0, 0.5, 0.9, 0.5, 0.1],  # target 1 ties with item 3 -> rank 3 (items 2 and 3 count against it)
            [9.0, 0.2, 0.9, 0.8, 0.7],  # target 4; items 2 and 3 are history -> rank 1
        ]
    )
    ranks = pessimistic_ranks(scores, torch.tensor([1, 4]), exclude=[[], [2, 3]])
    assert ranks.tolist() == [3, 1]  # column 0 (padding) never counts, whatever its score
    assert recall_at(ranks, 2) == 0.5
    assert ndcg_at(ranks, 3) == pytest.approx((1 / math.log2(4) + 1 / math.log2(2)) / 2)


def test_constant_scorer_gets_zero_and_oracle_gets_one():
    targets = torch.tensor([3, 7, 1, 9])
    constant = pessimistic_ranks(torch.zeros(4, 31), targets, exclude=[[], [], [], []])  # 30 items > k
    assert recall_at(constant, 10) == 0.0 and ndcg_at(constant, 10) == 0.0
    oracle = torch.zeros(4, 31)
    oracle[torch.arange(4), targets] = 1.0
    ranks = pessimistic_ranks(oracle, targets, exclude=[[1], [2], [3], [4]])
    assert recall_at(ranks, 1) == 1.0 and ndcg_at(ranks, 1) == 1.0
