"""The paper's dataset filters (section 4.1), applied in this order, each counted:

1. drop items without text or without a readable image, and their interactions;
2. optionally keep only the last purchase of an item a user bought again;
3. drop users with fewer than `min_user_interactions` interactions;
4. split (`prepare.split`): leave-one-out, or temporal (two global cuts in time: training before the first, a
   user's first interaction between them validates, their first after the second tests; what follows a user's
   last target is dropped, and a target without an earlier interaction of its user is no target);
5. keep each user's last `max_sequence_length` interactions (up to their last target);
6. drop items that no longer occur; re-index items 1..N (0 = padding) and users 0..U-1;

then count each item's occurrences in the training part of the split.

Ties in time: interactions of one user with equal timestamps keep the interim table's row order, which is the
source's (docs/design.md), so the order is the same on every run; stats.json counts the targets whose order
against their input (or the user's next interaction) is a tie, and so unknown.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.dataset.config import PrepareConfig
from pipeline.dataset.processed import (
    ITEMS,
    NO_TARGET,
    SEQUENCES,
    SPLIT_SEQUENCES,
    TargetSplit,
    UserSplits,
    flattened,
    train_counts,
    user_splits,
    write_processed,
)
from pipeline.errors import InputError
from pipeline.formats import images
from pipeline.formats.interim import ITEMS_FILE as INTERIM_ITEMS_FILE
from pipeline.formats.interim import read_interim

log = logging.getLogger(__name__)

TARGET_SPLITS: tuple[TargetSplit, ...] = ("valid", "test")
PERIODS = ("before_first_cut", "between_cuts", "after_second_cut")


def prepare(interim: Path, raw: Path, out: Path, config: PrepareConfig) -> dict[str, Any]:
    """Filter, split and re-index the interim tables of `interim`; write processed/ to `out`."""
    interactions, items = read_interim(interim)
    if interactions.num_rows == 0:
        raise InputError(f"{interim}: no interactions to prepare. Check the ingest_report.json beside it.")
    check_unique(items, interim / INTERIM_ITEMS_FILE)

    user, item, timestamp, user_ids, item_ids = grouped_by_user(interactions)
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
    user = user[keep]  # a column at a time, each original freed before the next copy (254 MB a column on H&M)
    item = item[keep]
    timestamp = timestamp[keep]

    if config.repeated_items == "last":
        keep = last_occurrences(user, item)
        drops["repeated_items"] = {"interactions": int((~keep).sum())}
        user, item, timestamp = user[keep], item[keep], timestamp[keep]

    counts = np.bincount(user, minlength=len(user_ids))
    short = counts[user] < config.min_user_interactions
    drops["min_user_interactions"] = {
        "users": int(((counts > 0) & (counts < config.min_user_interactions)).sum()),
        "interactions": int(short.sum()),
    }
    keep = ~short
    user = user[keep]
    item = item[keep]
    timestamp = timestamp[keep]
    if len(user) == 0:
        raise InputError(
            f"{interim}: no user keeps {config.min_user_interactions} interactions after the item filter "
            f"({drops['items_without_text_or_image']}). Check the raw folder's images and text, "
            "or lower prepare.min_user_interactions."
        )

    rows = UserRows.of(user)
    targets, split, split_drops = split_targets(interim, rows, timestamp, config)
    drops |= split_drops
    start = np.maximum(targets.lengths - config.max_sequence_length, 0)  # each user's last max_sequence_length rows up to end
    keep = rows.window(start, targets.lengths)
    kept = from_row(targets, start)
    drops["max_sequence_length"] = {"interactions": int(start.sum())}
    temporal = config.split == "temporal"
    if temporal:
        drops["max_sequence_length"]["valid_targets"] = int(((targets.valid_at != NO_TARGET) & (kept.valid_at == NO_TARGET)).sum())
        split["training_interactions"] = int(kept.train_end.sum())
        split["targets"] = {name: int((kept.at(name) != NO_TARGET).sum()) for name in TARGET_SPLITS}
        if not (split["training_interactions"] and all(split["targets"].values())):
            raise InputError(temporal_cuts_message(interim, config, split))
    tied = tied_targets(rows, kept, start, timestamp)
    user, item, codes = user[keep], item[keep], rows.user_code
    del rows, timestamp, keep, start  # per-row arrays (0.5 GB on the full H&M download) reindex does not read

    present = np.unique(item)
    drops["items_no_longer_occurring"] = {"items": int(len(item_ids) - bad_item.sum() - len(present))}

    items_table, sequences_table = reindex(user, item, user_ids, item_ids, items, (codes, kept) if temporal else None)
    stats = processed_stats(items_table, sequences_table, {"split": split, "drops": drops}) | {"targets_tied_in_time": tied}
    return write_processed(out, items_table, sequences_table, stats)


def processed_stats(items: pa.Table, sequences: pa.Table, made_by: dict[str, Any]) -> dict[str, Any]:
    """stats.json of a processed set cut from real data: the Table 1 row, `made_by` (the split and the drops, or
    the set it was cut from), and the split's targets: how many, and how many no ID model can reach or read as trained."""
    return (
        table1_row(sequences, items.num_rows)
        | made_by
        | {
            "targets": target_counts(items, sequences),
            "targets_repeating_history": repeated_targets(sequences),
            "test_inputs_ending_untrained": untrained_test_inputs(sequences),
        }
    )


@dataclass(frozen=True)
class UserRows:
    """Rows grouped by user (as grouped_by_user leaves them): each row's group and its index inside it."""

    starts: np.ndarray  # (G,) each group's first row
    sizes: np.ndarray  # (G,)
    group: np.ndarray  # (rows,)
    index: np.ndarray  # (rows,) 0 = the user's oldest
    user_code: np.ndarray  # (G,) the group's user code

    @staticmethod
    def of(user: np.ndarray) -> UserRows:
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        sizes = np.diff(np.r_[starts, len(user)])
        small = np.dtype(np.int32 if len(user) < 2**31 else np.int64)  # 4 bytes a row: 31M rows of the full H&M download
        group = np.repeat(np.arange(len(starts), dtype=small), sizes)
        index = np.arange(len(user), dtype=small)
        np.subtract(index, np.repeat(starts.astype(small), sizes), out=index)
        return UserRows(starts, sizes, group, index, user[starts])

    def window(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Mask of each user's rows[start:end] (per-user bounds)."""
        keep = self.index >= start.astype(self.index.dtype)[self.group]
        keep &= self.index < end.astype(self.index.dtype)[self.group]
        return keep


def from_row(targets: UserSplits, start: np.ndarray) -> UserSplits:
    """The positions once each user's rows before `start` are gone; a valid target left without an input is
    none (a test target keeps one: it stays where it was, or is the last of max_sequence_length >= 3 rows)."""
    valid_at = np.where(targets.valid_at - start >= 1, targets.valid_at - start, NO_TARGET)
    test_at = np.where(targets.test_at != NO_TARGET, targets.test_at - start, NO_TARGET)
    return UserSplits(targets.lengths - start, np.maximum(targets.train_end - start, 0), valid_at, test_at)


def split_targets(
    interim: Path, rows: UserRows, timestamp: np.ndarray, config: PrepareConfig
) -> tuple[UserSplits, dict[str, Any], dict[str, dict[str, int]]]:
    """The targets of `config.split`, what stats.json says of the split, and the split's drops."""
    if config.split == "leave_one_out":
        return leave_one_out_targets(rows), {"name": config.split}, {}
    cuts = temporal_cuts(timestamp, config.temporal_cuts)
    period = np.searchsorted(np.asarray(cuts), timestamp, side="right")  # 0 before the first cut, 1 between, 2 after
    split: dict[str, Any] = {
        "name": config.split,
        "cuts": list(config.temporal_cuts),
        "cut_timestamps": cuts,
        "cut_dates": [datetime.fromtimestamp(cut, UTC).strftime("%Y-%m-%d %H:%M:%S") for cut in cuts],
        "interactions": dict(zip(PERIODS, map(int, np.bincount(period, minlength=3)))),
    }
    if not all(split["interactions"].values()):
        raise InputError(temporal_cuts_message(interim, config, split))
    targets, without_input = temporal_targets(rows, period)
    drops = {"after_last_target": {"interactions": int((rows.sizes - targets.lengths).sum()), "users": int((targets.lengths == 0).sum())}}
    return targets, split, drops | {"targets_without_input": without_input}


def leave_one_out_targets(rows: UserRows) -> UserSplits:
    """Every user's last row tests, the one before validates, the rest trains."""
    return UserSplits(rows.sizes.copy(), rows.sizes - 2, rows.sizes - 2, rows.sizes - 1)


def temporal_cuts(timestamp: np.ndarray, quantiles: tuple[float, ...]) -> list[int]:
    """The timestamps at `quantiles` of the interactions in time order: the cut at q is the timestamp of the
    interaction at rank floor(q * n) (from 0), and an interaction falls before it when strictly earlier, so
    interactions sharing a timestamp (an H&M day) fall on one side of a cut."""
    ranks = [int(q * len(timestamp)) for q in quantiles]
    return [int(t) for t in np.partition(timestamp, ranks)[ranks]]


def temporal_targets(rows: UserRows, period: np.ndarray) -> tuple[UserSplits, dict[str, int]]:
    """Each user's first interaction between the cuts validates and their first after the second cut tests, if an
    earlier interaction of theirs is there to be its input; the interactions before the first cut train.

    A user's rows are in time order, so each period is a run of them: rows[:train_end] train, the valid period's
    follow, then the test period's. What follows the user's last target is read by nothing (rows[end:]): the rest
    of the test period, and the rest of the valid period when there is no test target."""
    per_period = np.bincount(rows.group * 3 + period, minlength=3 * len(rows.sizes)).reshape(-1, 3)  # (users, 3)
    train_end = per_period[:, 0]
    first_test = train_end + per_period[:, 1]
    valid_at = np.where((per_period[:, 1] > 0) & (train_end > 0), train_end, NO_TARGET)
    test_at = np.where((per_period[:, 2] > 0) & (first_test > 0), first_test, NO_TARGET)
    end = np.where(test_at != NO_TARGET, test_at + 1, np.where(valid_at != NO_TARGET, valid_at + 1, train_end))
    without_input = {
        "valid": int(((per_period[:, 1] > 0) & (train_end == 0)).sum()),
        "test": int(((per_period[:, 2] > 0) & (first_test == 0)).sum()),
    }
    return UserSplits(end, train_end, valid_at, test_at), without_input


def temporal_cuts_message(interim: Path, config: PrepareConfig, split: dict[str, Any]) -> str:
    parts = split["interactions"]
    left = (
        f", {split['training_interactions']} of them to train on and {split['targets']['valid']} valid and "
        f"{split['targets']['test']} test targets with an earlier interaction of their user"
        if "targets" in split
        else ""
    )
    return (
        f"{interim}: prepare.temporal_cuts = {list(config.temporal_cuts)} cut at timestamps {split['cut_timestamps']}, leaving "
        f"{parts['before_first_cut']} interactions before the first cut, {parts['between_cuts']} between the cuts and "
        f"{parts['after_second_cut']} after the second{left}; a temporal split needs each. Move the cuts "
        "(e.g. -S prepare.temporal_cuts=[0.7,0.85])."
    )


def tied_in_time(rows: UserRows, timestamp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows,) twice: whether a row shares its timestamp with its user's previous row, and with their next."""
    same = np.r_[False, (rows.index[1:] > 0) & (timestamp[1:] == timestamp[:-1])]
    return same, np.r_[same[1:], False]


def tied_targets(rows: UserRows, kept: UserSplits, start: np.ndarray, timestamp: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per split, the targets whose order in time is a tie, so that the documented order (the source's) decided it:
    sharing their timestamp with an input item of their user (the row before: rows are in time order), or with
    their user's next interaction (under temporal, another candidate for the first after the cut)."""
    with_previous, with_next = tied_in_time(rows, timestamp)
    counts: dict[str, dict[str, Any]] = {}
    for name in TARGET_SPLITS:
        has = kept.at(name) != NO_TARGET
        row = rows.starts[has] + start[has] + kept.at(name)[has]
        tied = int(with_previous[row].sum())
        counts[name] = {
            "targets": len(row),
            "with_input": tied,
            "share_with_input": round(tied / max(len(row), 1), 4),
            "with_next": int(with_next[row].sum()),
        }
    return counts


def grouped_by_user(interactions: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """User and item codes and the timestamps of the interactions grouped by user, oldest first, and the ids
    the codes index.

    Ties: a stable sort, so equal timestamps of one user keep the interim table's row order (the source's).
    """
    user_codes, user_ids = encode(interactions["user_id"])
    item_codes, item_ids = encode(interactions["item_id"])
    timestamp = interactions["timestamp"].to_numpy()
    order = np.lexsort((timestamp, user_codes))  # lexsort is stable
    # one column reordered at a time, each original freed before the next copy: 31.8M rows are 254 MB a column
    user_codes = user_codes[order]
    item_codes = item_codes[order]
    timestamp = timestamp[order]
    return user_codes, item_codes, timestamp, user_ids, item_ids


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


def reindex(
    user: np.ndarray,
    item: np.ndarray,
    user_ids: list[str],
    item_ids: list[str],
    items: pa.Table,
    split: tuple[np.ndarray, UserSplits] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Processed tables: items 1..N and users 0..U-1, both in order of their original id.

    `split`: the user codes and their targets, for sequences.parquet to write them out (else leave-one-out)."""
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
    columns = {
        "user_idx": pa.array(np.arange(len(kept_users), dtype=np.int32)),
        "user_id": pa.array([user_ids[u] for u in kept_users], pa.string()),
        "items": pa.ListArray.from_arrays(pa.array(offsets), pa.array(sequence_items)),
    }
    if split is not None:
        codes, targets = split
        group = np.full(len(user_ids), -1, dtype=np.int64)
        group[codes] = np.arange(len(codes))
        ours = group[kept_users]
        for name, values in (("train_end", targets.train_end), ("valid_at", targets.valid_at), ("test_at", targets.test_at)):
            kept = values[ours]
            columns[name] = pa.array(kept.astype(np.int32), pa.int32(), mask=kept == NO_TARGET)
    sequences = pa.table(columns, schema=SEQUENCES if split is None else SPLIT_SEQUENCES)

    train_count = train_counts(sequences, len(kept_items))
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


def target_counts(items: pa.Table, sequences: pa.Table) -> dict[str, dict[str, int]]:
    """Per split, its targets, and those whose user has no training interaction (an input of items the model
    trained on for other users only) or whose item has none (an untrained ID embedding: popularity group 0)."""
    splits = user_splits(sequences)
    user, flat, position = flattened(sequences)
    trained = np.r_[0, items["train_count"].to_numpy()] > 0
    counts = {}
    for name in ("valid", "test"):
        at = splits.at(name)
        has = np.flatnonzero(at != NO_TARGET)
        target = flat[(position == at[user])]
        counts[name] = {
            "targets": len(has),
            "users_without_training": int((splits.train_end[has] == 0).sum()),
            "items_without_training": int((~trained[target]).sum()),
        }
    return counts


def repeated_targets(sequences: pa.Table) -> dict[str, int]:
    """How many valid/test targets the user already bought earlier (in their input): unreachable when history is excluded."""
    splits = user_splits(sequences)
    user, flat, position = flattened(sequences)
    counts = {}
    for name in ("valid", "test"):
        at = splits.at(name)
        target = np.full(len(at), -1, dtype=np.int64)
        is_target = position == at[user]
        target[user[is_target]] = flat[is_target]
        earlier = (position < at[user]) & (flat == target[user])
        counts[name] = len(np.unique(user[earlier]))
    return counts


def untrained_test_inputs(sequences: pa.Table) -> int:
    """How many test inputs end with an item that occurs nowhere in training (under leave-one-out, the valid item):
    an ID model's most recent input is then an untrained embedding. A leave-one-out valid input always ends with
    a training item (see tuning.py)."""
    splits = user_splits(sequences)
    user, flat, position = flattened(sequences)
    trained = np.zeros(int(flat.max(initial=0)) + 1, dtype=bool)
    trained[flat[position < splits.train_end[user]]] = True
    last_input = flat[position == splits.test_at[user] - 1]  # test_at - 1 >= 0 where the user has a test target
    return int((~trained[last_input]).sum())
