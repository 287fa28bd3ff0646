"""The processed contract (docs/design.md), its one writer and its reader, and the split every later stage reads from it.

items.parquet      item_idx 1..N (0 is padding), item_id, text, image_path, train_count
sequences.parquet  user_idx 0..U-1, user_id, items (list of item_idx, oldest first); with a split other than
                   leave-one-out also train_end, valid_at, test_at: where the user's split falls in items
stats.json         the paper's Table 1 row and every drop by rule
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.artifacts import read_parquet, write_json, write_parquet
from pipeline.errors import InputError

PADDING_IDX = 0
NO_TARGET = -1  # valid_at / test_at of a user without that target (null in sequences.parquet)

ITEMS = pa.schema(
    [
        ("item_idx", pa.int32()),
        ("item_id", pa.string()),
        ("text", pa.string()),
        ("image_path", pa.string()),
        ("train_count", pa.int64()),
    ]
)
SEQUENCES = pa.schema([("user_idx", pa.int32()), ("user_id", pa.string()), ("items", pa.list_(pa.int32()))])
# A split written out (prepare.split: temporal): items[:train_end] is the user's training part; items[valid_at] the
# valid target, items[:valid_at] its input; items[test_at] and items[:test_at] likewise; null: no such target.
SPLIT_COLUMNS = ("train_end", "valid_at", "test_at")
SPLIT_SEQUENCES = pa.schema([*SEQUENCES, *((name, pa.int32()) for name in SPLIT_COLUMNS)])

ITEMS_FILE = "items.parquet"
SEQUENCES_FILE = "sequences.parquet"
STATS_FILE = "stats.json"

TargetSplit = Literal["valid", "test"]


@dataclass(frozen=True)
class Split:
    """Leave-one-out: train on all but the last two, validate on the second to last, test on the last."""

    train: Sequence[int]
    valid: int
    test: int


def leave_one_out(sequence: Sequence[int]) -> Split:
    if len(sequence) < 3:
        raise ValueError(f"leave-one-out needs at least 3 interactions, got {len(sequence)}")
    return Split(train=sequence[:-2], valid=sequence[-2], test=sequence[-1])


@dataclass(frozen=True)
class UserSplits:
    """Every user's split as positions in their sequence, one entry per row of sequences.parquet.

    items[:train_end] is the training part; items[valid_at] the valid target and items[:valid_at]
    its input; items[test_at] and items[:test_at] likewise; NO_TARGET: the user has no such target.
    Leave-one-out is train_end = valid_at = n - 2, test_at = n - 1.
    """

    lengths: np.ndarray
    train_end: np.ndarray
    valid_at: np.ndarray
    test_at: np.ndarray

    def at(self, split: TargetSplit) -> np.ndarray:
        return self.valid_at if split == "valid" else self.test_at


def has_split_columns(sequences: pa.Table) -> bool:
    """Whether `sequences` writes its split out; without the columns it is leave-one-out."""
    return any(name in sequences.column_names for name in SPLIT_COLUMNS)


def user_splits(sequences: pa.Table) -> UserSplits:
    """The split of `sequences`: its split columns, or leave-one-out where it has none."""
    lengths = pc.list_value_length(sequences["items"]).to_numpy(zero_copy_only=False).astype(np.int64)
    if has_split_columns(sequences):
        train_end, valid_at, test_at = (
            pc.fill_null(sequences[name], NO_TARGET).to_numpy(zero_copy_only=False).astype(np.int64) for name in SPLIT_COLUMNS
        )
        return UserSplits(lengths, train_end, valid_at, test_at)
    if (lengths < 3).any():
        raise ValueError(f"leave-one-out needs at least 3 interactions, got {int(lengths.min())}")
    return UserSplits(lengths, lengths - 2, lengths - 2, lengths - 1)


def split_problem(sequences: pa.Table) -> str | None:
    """What breaks the split's rules in `sequences` (None: nothing): every target has an input, and nothing trains
    on a target or on what follows it."""
    if not has_split_columns(sequences):
        lengths = pc.list_value_length(sequences["items"]).to_numpy(zero_copy_only=False)
        short = np.flatnonzero(lengths < 3)
        if not len(short):
            return None
        return f"user_idx {sequences['user_idx'][int(short[0])]} holds {lengths[short[0]]} items, too few for leave-one-out"
    splits = user_splits(sequences)
    ok = (splits.train_end >= 0) & (splits.train_end <= splits.lengths)
    for name, at in (("valid_at", splits.valid_at), ("test_at", splits.test_at)):
        ok &= (at == NO_TARGET) | ((at >= np.maximum(splits.train_end, 1)) & (at < splits.lengths))
        if name == "test_at":
            ok &= (splits.test_at == NO_TARGET) | (splits.test_at > splits.valid_at)
    bad = np.flatnonzero(~ok)
    if not len(bad):
        return None
    user = int(bad[0])
    values = ", ".join(f"{name} {int(getattr(splits, name)[user])}" for name in SPLIT_COLUMNS)
    return (
        f"user_idx {sequences['user_idx'][user]} ({splits.lengths[user]} items: {values}) breaks the split's rules "
        "(1 <= a target's position < the items, train_end <= it, the test after the valid target)"
    )


def flattened(sequences: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sequences' items flattened, the row of each and its position in its sequence: statistics over a
    million users without a Python loop over them."""
    lists = sequences["items"].combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    items = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    user = np.repeat(np.arange(len(lengths)), lengths)
    return user, items, np.arange(len(items)) - starts[user]


def train_counts(sequences: pa.Table | Sequence[Sequence[int]], items: int) -> np.ndarray:
    """(items + 1,) each item's occurrences in the users' training parts, row 0 the padding: items.parquet's train_count.

    A table is split as it says; plain lists are leave-one-out."""
    table = sequences if isinstance(sequences, pa.Table) else pa.table({"items": pa.array(sequences, pa.list_(pa.int64()))})
    user, flat, position = flattened(table)
    return np.bincount(flat[position < user_splits(table).train_end[user]], minlength=items + 1).astype(np.int64)


def left_pad(items: Sequence[int], length: int) -> list[int]:
    """The last `length` items, padded on the left with 0 so the latest item is always last."""
    kept = list(items)[-length:]
    return [PADDING_IDX] * (length - len(kept)) + kept


def read_processed(processed: Path) -> tuple[pa.Table, pa.Table]:
    """items.parquet and sequences.parquet of `processed`, checked against the contract (the split's rules included)."""
    produced_by = f"odmt prepare --out {processed}"
    path = processed / SEQUENCES_FILE
    explicit = path.is_file() and any(name in pq.read_schema(path).names for name in SPLIT_COLUMNS)
    items = read_parquet(processed / ITEMS_FILE, ITEMS, produced_by)
    sequences = read_parquet(path, SPLIT_SEQUENCES if explicit else SEQUENCES, produced_by)
    if problem := split_problem(sequences):
        raise InputError(f"{path}: {problem}. Re-create it with `{produced_by}`.")
    return items, sequences


def write_processed(out: Path, items: pa.Table, sequences: pa.Table, stats: dict[str, Any]) -> dict[str, Any]:
    """Write the processed contract to `out` and return `stats`: the one writer of its tables (prepare, the tuning
    set, the synthetic set), each file atomic, so every processed set is what read_processed checks."""
    sequences_schema = SPLIT_SEQUENCES if has_split_columns(sequences) else SEQUENCES
    for name, table, schema in ((ITEMS_FILE, items, ITEMS), (SEQUENCES_FILE, sequences, sequences_schema)):
        if not table.schema.equals(schema):
            raise ValueError(f"{out / name}: the table's schema {table.schema} is not the processed contract's {schema}")
    if problem := split_problem(sequences):
        raise ValueError(f"{out / SEQUENCES_FILE}: {problem}")
    write_parquet(out / ITEMS_FILE, items)
    write_parquet(out / SEQUENCES_FILE, sequences)
    write_json(out / STATS_FILE, stats)
    return stats
