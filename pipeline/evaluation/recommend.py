"""`odmt recommend`: the top-k items of a trained run for known users, or for a cold user
given only the ids of items they interacted with.

A known user's history is their whole sequence (train, valid and test items): a
recommendation is for what comes next. Scores are ODMT's prediction, the mean of the
branch scores, over the full catalogue; history items are excluded unless asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import torch

from pipeline.dataset.processed import left_pad, read_processed
from pipeline.errors import InputError
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.ranking import inference_model, item_embeddings
from pipeline.models.checkpoints import load_run
from pipeline.runtime import resolve_device, set_up_cpu_process

RECOMMENDATIONS = pa.schema(
    [("user_id", pa.string()), ("rank", pa.int32()), ("item_id", pa.string()), ("score", pa.float32()), ("text", pa.string())]
)
COLD_USER = "(given history)"


def histories_for(
    sequences: pa.Table, item_index: dict[str, int], user_ids: Sequence[str] | None, history: Sequence[str] | None
) -> tuple[list[str], list[list[int]]]:
    """(user ids, their item_idx histories): the named users, a cold user's history, or every user."""
    if history:
        unknown = [item for item in history if item not in item_index]
        if unknown:
            raise InputError(f"--history: item id(s) {unknown[:5]} are not in the processed items.parquet.")
        return [COLD_USER], [[item_index[item] for item in history]]
    known = dict(zip(sequences["user_id"].to_pylist(), sequences["items"].to_pylist()))
    if user_ids is None:
        return list(known), list(known.values())
    unknown = [user for user in user_ids if user not in known]
    if unknown:
        raise InputError(
            f"user id(s) {unknown[:5]} are not in the processed sequences.parquet (users with too few "
            "interactions are dropped by `odmt prepare`). For a new user pass --history with their item ids."
        )
    return list(user_ids), [known[user] for user in user_ids]


@torch.no_grad()
def recommend(
    run: Path,
    processed: Path,
    features: Path,
    k: int,
    config: EvaluateConfig,
    user_ids: Sequence[str] | None = None,
    history: Sequence[str] | None = None,
) -> pa.Table:
    """Top-k per user: user_id, rank 1..k, item_id, score, text. All users when neither ids nor a history is given."""
    if user_ids and history:
        raise InputError("--user and --history given together: pass --user for known users or --history for a new user, not both.")
    set_up_cpu_process(config.cpu_threads)
    device = resolve_device(config.device)
    items_table, sequences = read_processed(processed)
    if not 1 <= k <= items_table.num_rows:
        raise InputError(f"--k {k}: must be between 1 and the {items_table.num_rows} items of {processed}.")
    item_ids = items_table["item_id"].to_pylist()
    users, histories = histories_for(sequences, {item: i + 1 for i, item in enumerate(item_ids)}, user_ids, history)
    model, _ = load_run(run, processed, features, device, config.item_features)
    model = inference_model(model, config.precision)
    items = item_embeddings(model)

    rows: dict[str, list] = {name: [] for name in RECOMMENDATIONS.names}
    texts = items_table["text"].to_pylist()
    for start in range(0, len(users), config.users_per_batch):
        block = histories[start : start + config.users_per_batch]
        inputs = torch.tensor([left_pad(h, model.config.positions) for h in block], dtype=torch.long, device=device)
        users_h = model.user_embeddings(inputs, items)
        scores = model.score(users_h, items, {"ensemble": model.branches})["ensemble"]  # (U, N + 1), as evaluate scores
        scores[:, 0] = float("-inf")
        if config.exclude_history:
            for row, seen in enumerate(block):
                scores[row, seen] = float("-inf")
        top = scores.topk(k, dim=1)
        for user, values, indices in zip(users[start:], top.values.tolist(), top.indices.tolist()):
            for rank, (score, item) in enumerate(zip(values, indices), start=1):
                if score == float("-inf"):  # fewer than k items left after excluding the history
                    break
                for name, value in zip(RECOMMENDATIONS.names, (user, rank, item_ids[item - 1], score, texts[item - 1])):
                    rows[name].append(value)
    return pa.table(rows, schema=RECOMMENDATIONS)
