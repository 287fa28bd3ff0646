"""The paper's dataset filters (section 4.1), applied in this order, each counted:

1. drop items without text or without a readable image, and their interactions;
2. optionally keep only the last purchase of an item a user bought again;
3. drop users with fewer than `min_user_interactions` interactions;
4. keep each user's last `max_sequence_length` interactions (equal timestamps keep source order);
5. drop items that no longer occur; re-index items 1..N (0 = padding) and users 0..U-1;

then count each item's occurrences in the training part of the leave-one-out split.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.dataset.config import PrepareConfig
from pipeline.dataset.processed import ITEMS, SEQUENCES, positions_from_end, split_places, train_counts, write_processed
from pipeline.errors import InputError
from pipeline.formats import images
from pipeline.formats.interim import ITEMS_FILE as INTERIM_ITEMS_FILE
from pipeline.formats.interim import read_interim

log = logging.getLogger(__name__)


def prepare(interim: Path, raw: Path, out: Path, config: PrepareConfig) -> dict[str, Any]:
    """Filter, re-index and split the interim tables of `interim`; write processed/ to `out`."""
    interactions, items = read_interim(interim)
    if interactions.num_rows == 0:
        raise InputError(f"{interim}: no interactions to prepare. Check the ingest_report.json beside it.")
    check_unique(items, interim / INTERIM_ITEMS_FILE)

    user, item, user_ids, item_ids = grouped_by_user(interactions)
    del interactions  # its 0.6 GB of columns on the full H&M download are codes now
    drops: dict[str, dict[str, Any]] = {}

    problems = item_problems(item_ids, items, raw, config)
    bad_item = np.array([problem is not None for problem in problems], dtype=bool)
    keep = ~bad_item[item]
    drops["items_without_text_or_image"] = {
        "items": int(bad_item.sum()),
        "interactions": int((~keep).sum()),
        "reasons": dict(sorted(Counter(p for p in problems if p is not None).items())),
    }
    user, item = user[keep], item[keep]

    if config.repeated_items == "last":
        keep = last_occurrences(user, item)
        drops["repeated_items"] = {"interactions": int((~keep).sum())}
        user, item = user[keep], item[keep]

    counts = np.bincount(user, minlength=len(user_ids))
    short = counts[user] < config.min_user_interactions
    drops["min_user_interactions"] = {
        "users": int(((counts > 0) & (counts < config.min_user_interactions)).sum()),
        "interactions": int(short.sum()),
    }
    user, item = user[~short], item[~short]
    if len(user) == 0:
        raise InputError(
            f"{interim}: no user keeps {config.min_user_interactions} interactions after the item filter "
            f"({drops['items_without_text_or_image']}). Check the raw folder's images and text, "
            "or lower prepare.min_user_interactions."
        )

    keep = last_per_user(user, config.max_sequence_length)
    drops["max_sequence_length"] = {"interactions": int((~keep).sum())}
    user, item = user[keep], item[keep]

    present = np.unique(item)
    drops["items_no_longer_occurring"] = {"items": int(len(item_ids) - bad_item.sum() - len(present))}

    items_table, sequences_table = reindex(user, item, user_ids, item_ids, items)
    return write_processed(out, items_table, sequences_table, processed_stats(items_table, sequences_table, {"drops": drops}))


def processed_stats(items: pa.Table, sequences: pa.Table, made_by: dict[str, Any]) -> dict[str, Any]:
    """stats.json of a processed set cut from real data: the Table 1 row, `made_by` (the drops, or the set it
    was cut from), and the split's targets no ID model can reach or read as trained."""
    return (
        table1_row(sequences, items.num_rows)
        | made_by
        | {
            "targets_repeating_history": repeated_targets(sequences),
            "test_inputs_ending_untrained": untrained_test_inputs(sequences),
        }
    )


def grouped_by_user(interactions: pa.Table) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """User and item codes of the interactions grouped by user, oldest first, and the ids they index.

    Stable: equal timestamps of one user keep the source's row order.
    """
    user_codes, user_ids = encode(interactions["user_id"])
    item_codes, item_ids = encode(interactions["item_id"])
    order = np.lexsort((interactions["timestamp"].to_numpy(), user_codes))
    return user_codes[order], item_codes[order], user_ids, item_ids


def encode(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Integer codes (int64) and the distinct values they index, each of which occurs.

    A dictionary-encoded column keeps its codes (its dictionary may hold values no row uses: dropped here).
    """
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = encoded.indices.to_numpy()
    used = np.bincount(codes, minlength=len(encoded.dictionary)) > 0
    renumbered = np.cumsum(used) - 1
    return renumbered[codes], encoded.dictionary.filter(pa.array(used)).to_pylist()


def check_unique(items: pa.Table, path: Path) -> None:
    counts = pc.value_counts(items["item_id"])
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        first = repeated[0].as_py()
        raise InputError(
            f"{path}: item_id {first['values']!r} appears {first['counts']} times "
            f"({len(repeated)} ids repeat). Each item must appear once; re-run `odmt ingest`."
        )


def item_problems(item_ids: list[str], items: pa.Table, raw: Path, config: PrepareConfig) -> list[str | None]:
    """For each id of `item_ids`: None if it has text and a readable image, else the drop reason."""
    known = dict(zip(items["item_id"].to_pylist(), zip(items["text"].to_pylist(), items["image_path"].to_pylist())))
    problems: list[str | None] = [None] * len(item_ids)
    to_open: list[tuple[int, images.ImageSource]] = []
    for i, item_id in enumerate(item_ids):
        if item_id not in known:
            problems[i] = "not_in_items_table"
            continue
        text, image = known[item_id]
        if text is None or not text.strip():
            problems[i] = "no_text"
        elif image is None:
            problems[i] = "no_image"
        elif (path := images.resolve_inside(raw, image)) is None:
            problems[i] = images.OUTSIDE_RAW
            log.warning("item %s: image path %r leaves the raw folder %s; item dropped", item_id, image, raw)
        else:
            to_open.append((i, path))
    decode = config.image_check == "decode"
    with ThreadPoolExecutor(config.image_workers) as pool:  # PIL decodes outside the GIL
        found = pool.map(lambda path: images.image_problem(path, decode), [path for _, path in to_open])
        for (i, _), problem in zip(to_open, found):
            problems[i] = problem
    return problems


def last_occurrences(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Mask keeping, per (user, item) pair, only its last row."""
    pair = user * (int(item.max()) + 1) + item
    _, first_from_end = np.unique(pair[::-1], return_index=True)
    keep = np.zeros(len(pair), dtype=bool)
    keep[len(pair) - 1 - first_from_end] = True
    return keep


def last_per_user(user: np.ndarray, length: int) -> np.ndarray:
    """Mask keeping each user's last `length` rows; rows are grouped by user, oldest first."""
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    return positions_from_end(np.diff(np.r_[starts, len(user)])) <= length


def reindex(user: np.ndarray, item: np.ndarray, user_ids: list[str], item_ids: list[str], items: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Processed tables: items 1..N and users 0..U-1, both in order of their original id."""
    kept_items = sorted(np.unique(item), key=item_ids.__getitem__)
    item_idx = np.zeros(len(item_ids), dtype=np.int32)
    item_idx[kept_items] = np.arange(1, len(kept_items) + 1, dtype=np.int32)
    kept_users = sorted(np.unique(user), key=user_ids.__getitem__)
    user_idx = np.full(len(user_ids), -1, dtype=np.int64)
    user_idx[kept_users] = np.arange(len(kept_users))

    # Rows are grouped by original user code; regroup them in user_idx order, keeping time order.
    order = np.argsort(user_idx[user], kind="stable")
    sequence_items = item_idx[item[order]]
    sizes = np.bincount(user_idx[user], minlength=len(kept_users))
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int32)
    sequences = pa.table(
        {
            "user_idx": pa.array(np.arange(len(kept_users), dtype=np.int32)),
            "user_id": pa.array([user_ids[u] for u in kept_users], pa.string()),
            "items": pa.ListArray.from_arrays(pa.array(offsets), pa.array(sequence_items)),
        },
        schema=SEQUENCES,
    )

    train_count = train_counts(sequences["items"], len(kept_items))
    kept_ids = pa.array([item_ids[i] for i in kept_items], pa.string())
    details = items.take(pc.index_in(kept_ids, value_set=items["item_id"]))
    item_table = pa.table(
        {
            "item_idx": pa.array(np.arange(1, len(kept_items) + 1, dtype=np.int32)),
            "item_id": kept_ids,
            "text": details["text"],
            "image_path": details["image_path"],
            "train_count": pa.array(train_count[1:]),
        },
        schema=ITEMS,
    )
    return item_table, sequences


def table1_row(sequences: pa.Table, n_items: int) -> dict[str, Any]:
    """The paper's Table 1 columns for the processed data."""
    n_users = sequences.num_rows
    n_interactions = int(pc.sum(pc.list_value_length(sequences["items"])).as_py())
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n_interactions,
        "average_length": round(n_interactions / n_users, 4),
        "density": round(n_interactions / (n_users * n_items), 6),
    }


def repeated_targets(sequences: pa.Table) -> dict[str, int]:
    """How many valid/test targets the user already bought earlier: unreachable when history is excluded."""
    user, items, place = split_places(sequences["items"])
    valid, test = items[place == 2], items[place == 1]  # one per user, in user order
    train = place > 2

    def in_history(target: np.ndarray) -> np.ndarray:
        found = np.zeros(len(target), dtype=bool)
        found[user[train][items[train] == target[user[train]]]] = True
        return found

    return {"valid": int(in_history(valid).sum()), "test": int((in_history(test) | (test == valid)).sum())}


def untrained_test_inputs(sequences: pa.Table) -> int:
    """How many test inputs end with a valid item that occurs nowhere in training: an ID model's most recent
    input is then an untrained embedding. A valid input always ends with a training item (see tuning.py)."""
    _, items, place = split_places(sequences["items"])
    trained = np.zeros(int(items.max(initial=0)) + 1, dtype=bool)
    trained[items[place > 2]] = True
    return int((~trained[items[place == 2]]).sum())
