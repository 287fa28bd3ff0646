"""`odmt evaluate`: the run's selected checkpoint (best.safetensors, chosen on validation) ranked
against every item on the valid and the test target, once.

Writes to the metrics folder:
  metrics.json            Recall@k and NDCG@k on valid and test, for the ensemble (ODMT's
                          prediction), each branch alone, and the popularity ranking (a DVC metric)
  ranks.parquet           one row per user and split: target, its popularity group, its rank per scorer
  user_metrics.parquet    one row per user, split and scorer: Recall@k and NDCG@k of that user alone, whose means
                          are metrics.json's; two runs on the same processed set compare user by user (odmt report)
  popularity_groups.tsv   test metrics per item-popularity group (paper Figure 4; a DVC plot)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from pipeline.artifacts import write_json, write_parquet, write_tsv
from pipeline.dataset.processed import read_processed
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING, EvaluateConfig
from pipeline.evaluation.ranking import (
    Popularity,
    inference_model,
    item_embeddings,
    rank_task,
    scorers,
    test_task,
    validation_task,
)
from pipeline.models.checkpoints import load_run
from pipeline.runtime import resolve_device, set_up_cpu_process

METRICS, RANKS, USER_METRICS, POPULARITY = "metrics.json", "ranks.parquet", "user_metrics.parquet", "popularity_groups.tsv"


def per_user_metrics(ranks: torch.Tensor, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Each user's Recall@k (1 if the target ranks in the top k, else 0) and NDCG@k (1 / log2(rank + 1) there, else 0),
    in float64: metrics.json and popularity_groups.tsv hold their means, so a mean of user_metrics.parquet equals them."""
    rank = ranks.cpu().numpy().astype(np.float64)
    recall = {f"recall@{k}": (rank <= k).astype(np.float64) for k in ks}
    return recall | {f"ndcg@{k}": np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0) for k in ks}


def mean_metrics(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    return {key: float(values.mean()) for key, values in per_user.items()}


def popularity_groups(train_count: np.ndarray, groups: int) -> np.ndarray:
    """Group of every item_idx (row 0 = padding): 0 if never seen in training, else 1..groups
    by training frequency (1 = rarest), each group holding the same number of items (Figure 4)."""
    seen = np.flatnonzero(train_count > 0)
    by_frequency = seen[np.argsort(train_count[seen], kind="stable")]
    group = np.zeros(len(train_count), dtype=np.int64)
    group[by_frequency] = 1 + np.arange(len(by_frequency)) * groups // max(len(by_frequency), 1)
    return group


def group_metrics(
    ranks: torch.Tensor, targets: torch.Tensor, group: np.ndarray, train_count: np.ndarray, config: EvaluateConfig
) -> list[dict[str, Any]]:
    """One row per popularity group: its items, the users whose target falls in it, their metrics."""
    target_group = torch.from_numpy(group)[targets]
    rows = []
    for g in range(config.popularity_groups + 1):
        members = target_group == g
        counts = train_count[group == g]
        row: dict[str, Any] = {
            "group": g,
            "items": int((group[1:] == g).sum()),
            "users": int(members.sum()),
            "min_train_count": int(counts.min()) if len(counts) else 0,
            "max_train_count": int(counts.max()) if len(counts) else 0,
        }
        per_user = per_user_metrics(ranks[members], config.ks)
        rows.append(row | (mean_metrics(per_user) if row["users"] else dict.fromkeys(per_user, 0.0)))
    return rows


@torch.no_grad()
def evaluate(run: Path, processed: Path, features: Path, out: Path, config: EvaluateConfig) -> dict[str, Any]:
    """Rank valid and test targets with best.safetensors; write metrics.json, ranks.parquet, user_metrics.parquet and
    popularity_groups.tsv to `out`."""
    set_up_cpu_process(config.cpu_threads)
    device = resolve_device(config.device)
    items_table, sequences = read_processed(processed)
    if max(config.ks) > items_table.num_rows:
        raise InputError(
            f"evaluate.ks: k = {max(config.ks)} is larger than the {items_table.num_rows} items of {processed}. "
            "Lower it in params.yaml (or -S evaluate.ks=[10])."
        )
    model, epoch = load_run(run, processed, features, device, config.item_features)
    model = inference_model(model, config.precision)
    items = item_embeddings(model)
    by = scorers(model.branches, config.each_branch)
    train_count = np.concatenate([[0], items_table["train_count"].to_numpy()])
    group = popularity_groups(train_count, config.popularity_groups)
    popularity = Popularity(torch.from_numpy(train_count).to(device))
    popularity_items, by_popularity = item_embeddings(popularity), {POPULARITY_RANKING: [POPULARITY_RANKING]}

    metrics: dict[str, Any] = {"epoch": epoch, "users": sequences.num_rows, "items": items_table.num_rows}
    columns: dict[str, list[Any]] = {}
    by_user: list[pa.Table] = []  # user_metrics.parquet: per split, per scorer, every user with a target there
    for split, make_task in (("valid", validation_task), ("test", test_task)):
        task = make_task(sequences, model.config.positions, config.exclude_history)
        ranks = rank_task(model, task, items, by, config.users_per_batch, config.items_per_batch)
        ranks |= rank_task(popularity, task, popularity_items, by_popularity, config.users_per_batch, config.items_per_batch)
        users = sequences.take(task.rows().numpy())  # the users with a target in this split
        for name, scorer_ranks in ranks.items():
            per_user = per_user_metrics(scorer_ranks, config.ks)
            metrics.setdefault(name, {})[split] = mean_metrics(per_user)
            ids = {"user_idx": users["user_idx"], "user_id": users["user_id"]}
            cases = {"split": [split] * users.num_rows, "scorer": [name] * users.num_rows, "target": task.targets.numpy()}
            by_user.append(pa.table(ids | cases | per_user))
        split_columns = {
            "user_idx": users["user_idx"].to_pylist(),
            "user_id": users["user_id"].to_pylist(),
            "split": [split] * users.num_rows,
            "target": task.targets.tolist(),
            "popularity_group": group[task.targets.numpy()].tolist(),
        } | {f"rank_{name}": r.tolist() for name, r in ranks.items()}
        for key, values in split_columns.items():
            columns.setdefault(key, []).extend(values)
        if split == "test":
            groups = group_metrics(ranks["ensemble"], task.targets, group, train_count, config)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / METRICS, metrics)
    write_parquet(out / RANKS, pa.table(columns))
    write_parquet(out / USER_METRICS, pa.concat_tables(by_user))
    write_tsv(out / POPULARITY, groups)
    return metrics
