import math

import numpy as np
import pytest
import torch

from pipeline.evaluation.evaluate import popularity_groups
from pipeline.evaluation.ranking import RankingTask, ndcg_at, pessimistic_ranks, rank_task, recall_at, scorers


def ranks_of(scores: torch.Tensor, targets: list[int], exclude: list[list[int]], items_per_batch: int = 100) -> torch.Tensor:
    """Ranks under a scorer whose score matrix is given: one-hot items make H . D = scores."""
    users, items = {"x": scores}, {"x": torch.eye(scores.shape[1])}
    return pessimistic_ranks(users, items, torch.tensor(targets), exclude, {"x": ["x"]}, items_per_batch)["x"]


def test_ranks_count_ties_against_the_target_and_skip_excluded_items():
    scores = torch.tensor(
        [
            [9.0, 0.5, 0.9, 0.5, 0.1],  # target 1 ties with item 3 -> rank 3 (items 2 and 3 count against it)
            [9.0, 0.2, 0.9, 0.8, 0.7],  # target 4; items 2 and 3 are history -> rank 1
        ]
    )
    for items_per_batch in (1, 2, 100):
        assert ranks_of(scores, [1, 4], [[], [2, 3]], items_per_batch).tolist() == [3, 1]  # padding never counts
    ranks = ranks_of(scores, [1, 4], [[], [2, 3]])
    assert recall_at(ranks, 2) == 0.5
    assert ndcg_at(ranks, 3) == pytest.approx((1 / math.log2(4) + 1 / math.log2(2)) / 2)


def test_an_excluded_target_gets_the_worst_rank_and_nan_counts_against_the_target():
    scores = torch.tensor([[0.0, 0.1, 0.9, 0.3], [0.0, 0.1, 0.9, 0.3]])
    # user 0 repeats item 2 from its history: hidden history cannot recommend it
    assert ranks_of(scores, [2, 2], [[2], []]).tolist() == [3, 1]
    users, items = {"x": torch.ones(2, 1)}, {"x": torch.tensor([[0.0], [1.0], [float("nan")], [0.5]])}
    ranks = pessimistic_ranks(users, items, torch.tensor([1, 2]), [[], []], {"x": ["x"]}, 100)["x"]
    assert ranks.tolist() == [2, 3]  # a NaN competitor beats the target; a NaN target is last


def test_constant_scorer_gets_zero_and_oracle_gets_one():
    targets = [3, 7, 1, 9]
    constant = ranks_of(torch.zeros(4, 31), targets, [[], [], [], []])  # 30 items > k
    assert recall_at(constant, 10) == 0.0 and ndcg_at(constant, 10) == 0.0
    oracle = torch.zeros(4, 31)
    oracle[torch.arange(4), torch.tensor(targets)] = 1.0
    ranks = ranks_of(oracle, targets, [[1], [2], [3], [4]])
    assert recall_at(ranks, 1) == 1.0 and ndcg_at(ranks, 1) == 1.0


class LastItemUsers(torch.nn.Module):
    """A stand-in model: the user embedding of each branch is a fixed vector per last history item."""

    branches = ("image", "text", "id")

    def __init__(self, items: int, d: int) -> None:
        super().__init__()
        self.table = {b: torch.randn(items + 1, d) for b in self.branches}
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {b: self.table[b][histories[:, -1]] for b in self.branches}


def test_blocks_of_users_and_items_give_the_ranks_of_one_big_matrix():
    torch.manual_seed(0)
    n_items, n_users, d = 50, 23, 4
    model = LastItemUsers(n_items, d)
    items = {b: torch.randn(n_items + 1, d) for b in model.branches}
    histories = torch.randint(1, n_items + 1, (n_users, 3))
    targets = torch.randint(1, n_items + 1, (n_users,))
    exclude = [sorted(set(h.tolist()) - {t.item()}) for h, t in zip(histories, targets)]
    task = RankingTask(histories, targets, exclude)
    by = scorers(model.branches, each_branch=True)
    assert set(by) == {"ensemble", "image", "text", "id"}

    users = model.user_embeddings(histories, items)
    for name, branches in by.items():  # the reference: one score matrix, ranks by definition
        scores = torch.stack([users[b] @ items[b].T for b in branches]).mean(dim=0)
        candidate = torch.ones_like(scores, dtype=torch.bool)
        candidate[:, 0] = False
        for u, excluded in enumerate(exclude):
            candidate[u, excluded] = False
            candidate[u, targets[u]] = False
        target_scores = scores[torch.arange(n_users), targets].unsqueeze(1)
        expected = 1 + ((scores >= target_scores - 1e-6) & candidate).sum(dim=1)
        for users_per_batch, items_per_batch in ((1000, 1000), (5, 7), (1, 1)):
            ranks = rank_task(model, task, items, by, users_per_batch, items_per_batch)
            assert torch.equal(ranks[name], expected), (name, users_per_batch, items_per_batch)


def test_popularity_groups_put_unseen_items_in_group_0_and_split_the_rest_evenly():
    train_count = np.array([0, 5, 0, 1, 9, 2, 2, 7, 3, 0, 1])  # row 0 = padding
    group = popularity_groups(train_count, groups=4)
    assert group[[2, 9]].tolist() == [0, 0]
    seen = np.flatnonzero(train_count[1:] > 0) + 1
    sizes = np.bincount(group[seen], minlength=5)[1:]
    assert sizes.tolist() == [2, 2, 2, 2]
    assert group[4] == 4 and group[3] == 1  # most and least frequent
    for g in range(1, 4):  # every item of a lower group is at most as frequent as every item of the next
        assert train_count[group == g].max() <= train_count[group == g + 1].min()
