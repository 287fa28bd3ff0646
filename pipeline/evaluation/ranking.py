"""Full ranking (paper 4.2, made honest): every item scored for every user, no sampling.

Users are ranked in blocks of users x items, so memory stays bounded however large the
catalogue. A target's rank counts every other candidate scoring at least as high, so
ties count against the target and a constant scorer gets 0. Excluded items (the user's
history, by default) are not candidates; a target that is itself excluded (a repeat
purchase under history exclusion) gets the worst rank, because a system that hides
history could never recommend it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import torch
from torch import nn

from pipeline.dataset.processed import NO_TARGET, TargetSplit, left_pad, user_splits
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.models.base import Ranker, Recommender
from pipeline.runtime import Precision, resolve_precision


@dataclass(frozen=True)
class RankingTask:
    """Users' inputs, their targets, and the items excluded from each user's ranking."""

    histories: torch.Tensor  # (U, positions) left-padded
    targets: torch.Tensor  # (U,)
    exclude: list[list[int]]
    users: torch.Tensor | None = None  # (U,) each target's row in sequences.parquet; None: row i is target i's

    def rows(self) -> torch.Tensor:
        """Each target's row in sequences.parquet."""
        return self.users if self.users is not None else torch.arange(len(self.targets))

    def share(self, rank: int, world_size: int) -> RankingTask:
        """The rank-th of world_size contiguous parts of the users: concatenated in rank order, they are the task."""
        start, stop = len(self.targets) * rank // world_size, len(self.targets) * (rank + 1) // world_size
        users = None if self.users is None else self.users[start:stop]
        return RankingTask(self.histories[start:stop], self.targets[start:stop], self.exclude[start:stop], users)


def ranking_task(inputs: Sequence[Sequence[int]], targets: Sequence[int], positions: int, exclude_history: bool) -> RankingTask:
    return RankingTask(
        histories=torch.tensor([left_pad(s, positions) for s in inputs], dtype=torch.long),
        targets=torch.tensor(list(targets), dtype=torch.long),
        exclude=[sorted(set(s)) if exclude_history else [] for s in inputs],
    )


def split_task(sequences: pa.Table, split: TargetSplit, positions: int, exclude_history: bool = True) -> RankingTask:
    """Every user with a `split` target, as the split written in `sequences` places it (leave-one-out where
    it writes none): input the user's items before the target, at most the last `positions`."""
    at = user_splits(sequences).at(split)
    users = (at != NO_TARGET).nonzero()[0]
    if not len(users):
        raise InputError(f"sequences.parquet: no user has a {split} target. Prepare the set again (`odmt prepare`), with other cuts.")
    lists = sequences["items"].to_pylist()
    inputs = [lists[u][: at[u]] for u in users]
    targets = [lists[u][at[u]] for u in users]
    return replace(ranking_task(inputs, targets, positions, exclude_history), users=torch.from_numpy(users))


def validation_task(sequences: pa.Table, positions: int, exclude_history: bool = True) -> RankingTask:
    """Each user's valid target, input the items before it: under leave-one-out the second-to-last item after the
    training part, under a temporal split the first after the first cut. No test target is read."""
    return split_task(sequences, "valid", positions, exclude_history)


def test_task(sequences: pa.Table, positions: int, exclude_history: bool = True) -> RankingTask:
    """Each user's test target, input the items before it: under leave-one-out the last item after the training
    part and the valid item, under a temporal split the first after the second cut after everything before it."""
    return split_task(sequences, "test", positions, exclude_history)


def scorers(branches: Sequence[str], each_branch: bool) -> dict[str, list[str]]:
    """ "ensemble" = mean of every branch's score (ODMT's prediction); optionally each branch alone."""
    alone = {branch: [branch] for branch in branches} if each_branch and len(branches) > 1 else {}
    return {"ensemble": list(branches)} | alone


def pessimistic_ranks(
    users: dict[str, torch.Tensor],
    items: dict[str, torch.Tensor],
    targets: torch.Tensor,
    exclude: Sequence[Sequence[int]],
    scorers: dict[str, list[str]],
    items_per_batch: int,
) -> dict[str, torch.Tensor]:
    """{scorer: 1-based rank of each target among all N items}, for one block of users.

    users {branch: (U, d)}; items {branch: (N + 1, d)}, row 0 = padding. A scorer's score
    is Ranker.score's, the mean over its branches of H . D (no popularity correction), and
    rank = 1 + #{candidates j != target : s_j >= s_target}, counted over item blocks.
    A NaN score counts against the target.
    """
    device = targets.device
    n_items = len(next(iter(items.values()))) - 1
    own = Ranker.score(users, {b: e[targets] for b, e in items.items()}, scorers, paired=True)  # {scorer: (U,)}
    target = {name: score.unsqueeze(1) for name, score in own.items()}
    rows = torch.repeat_interleave(torch.arange(len(exclude)), torch.tensor([len(e) for e in exclude], dtype=torch.long))
    columns = torch.tensor([item for excluded in exclude for item in excluded], dtype=torch.long)
    rows, columns = rows.to(device), columns.to(device)
    target_excluded = torch.zeros(len(targets), dtype=torch.bool, device=device)
    target_excluded[rows[columns == targets[rows]]] = True
    # (row, item) pairs that are not candidates: the excluded items and each user's own target
    rows = torch.cat([rows, torch.arange(len(targets), device=device)])
    columns = torch.cat([columns, targets])
    higher = {name: torch.zeros(len(targets), dtype=torch.long, device=device) for name in scorers}
    for start in range(1, n_items + 1, items_per_batch):
        end = min(start + items_per_batch, n_items + 1)
        scores = Ranker.score(users, {b: e[start:end] for b, e in items.items()}, scorers)  # {scorer: (U, C)}
        inside = (columns >= start) & (columns < end)
        pair_rows, pair_columns = rows[inside], columns[inside] - start
        for name in scorers:
            counted = (scores[name] < target[name]).logical_not_()  # >= target, or NaN
            higher[name] += counted.sum(dim=1, dtype=torch.int32)  # int32: a bool sum is int64, a 128 MB copy a block
            higher[name].index_add_(0, pair_rows, -counted[pair_rows, pair_columns].long())  # not candidates
        del scores, counted  # freed before the next block's are computed: one block alive, not two
    return {
        name: torch.where(target_excluded | target[name].squeeze(1).isnan(), torch.full_like(count, n_items), count + 1)
        for name, count in higher.items()
    }


def recall_at(ranks: torch.Tensor, k: int) -> float:
    """Leave-one-out Recall@k (= Hit@k): the share of users whose target ranks in the top k."""
    return (ranks <= k).float().mean().item()


def ndcg_at(ranks: torch.Tensor, k: int) -> float:
    """NDCG@k with one relevant item: 1 / log2(rank + 1) inside the top k, else 0."""
    gains = torch.where(ranks <= k, 1.0 / torch.log2(ranks.float() + 1), torch.zeros_like(ranks, dtype=torch.float))
    return gains.mean().item()


def ranking_metrics(ranks: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    return {f"recall@{k}": recall_at(ranks, k) for k in ks} | {f"ndcg@{k}": ndcg_at(ranks, k) for k in ks}


def inference_model(model: Recommender, precision: Precision) -> Recommender:
    """The model as it ranks: a bf16 (or fp16) copy where `precision` resolves to one, else itself.

    Whole-model low precision rather than autocast: no per-operation casts, so users
    encode 1.2-1.5x faster on CPU. Validation, evaluate and recommend all rank through
    it, so best.safetensors' valid metric is the one evaluate reproduces.
    """
    device = next(model.parameters()).device
    resolved = resolve_precision(device, precision, bf16_on_cpu=True)
    if resolved == "fp32":
        return model.eval()
    shared = {id(model.features): model.features}  # the frozen features stay as they are, not copied
    return copy.deepcopy(model, shared).to(torch.bfloat16 if resolved == "bf16" else torch.float16).eval()


def evaluation_mode(model: Ranker) -> Ranker:
    """A model ranks in eval mode: dropout off (a ranker that is no nn.Module has no training mode)."""
    if isinstance(model, nn.Module):
        model.eval()
    return model


@torch.no_grad()
def item_embeddings(model: Ranker) -> dict[str, torch.Tensor]:
    """Every item encoded once; fp32 out, so scores are compared in fp32.

    Checked finite once here, for every block that ranks with them: a NaN score would rank
    its target last, and metrics would come out as zeros instead of an error.
    """
    embeddings = {branch: e.float() for branch, e in evaluation_mode(model).all_item_embeddings().items()}
    for branch, embedding in embeddings.items():
        finite = embedding[1:].isfinite().all(dim=1)  # row 0 is padding, never ranked
        if not finite.all():
            raise InputError(
                f"item_idx {int((~finite).nonzero()[0, 0]) + 1}: its {branch} embedding is NaN or infinite, so the checkpoint's "
                "weights (diverged or damaged) or the item features are corrupt; retrain, or re-run `odmt extract`."
            )
    return embeddings


@torch.no_grad()
def rank_task(
    model: Ranker,
    task: RankingTask,
    items: dict[str, torch.Tensor],
    by: dict[str, list[str]],
    users_per_batch: int,
    items_per_batch: int,
) -> dict[str, torch.Tensor]:
    """{scorer: rank of every user's target}, users in blocks of `users_per_batch`."""
    evaluation_mode(model)
    device = next(iter(items.values())).device
    blocks = []
    for start in range(0, len(task.targets), users_per_batch):
        block = slice(start, start + users_per_batch)
        users = model.user_embeddings(task.histories[block].to(device), items)
        targets = task.targets[block].to(device)
        blocks.append(pessimistic_ranks(users, items, targets, task.exclude[block], by, items_per_batch))
    return {name: torch.cat([ranks[name].cpu() for ranks in blocks]) for name in by}


class Popularity(Ranker):
    """Pop: every user gets the items in order of their training-part count (RecBole's Pop).

    Ranked by the same code as every model (history excluded, ties against the target),
    it is the floor a sequential model has to clear on a dataset.
    """

    branches = (POPULARITY_RANKING,)

    def __init__(self, train_count: torch.Tensor) -> None:
        self.train_count = train_count.float().unsqueeze(1)  # (N + 1, 1): the item "embedding" is its count

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        return {POPULARITY_RANKING: self.train_count}

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {POPULARITY_RANKING: torch.ones(len(histories), 1, device=histories.device)}
