"""The processed contract (docs/design.md), its one writer and its reader, and the leave-one-out split every later stage uses.

items.parquet      item_idx 1..N (0 is padding), item_id, text, image_path, train_count
sequences.parquet  user_idx 0..U-1, user_id, items (list of item_idx, oldest first)
stats.json         the paper's Table 1 row and every drop by rule
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.artifacts import read_parquet, write_json, write_parquet

PADDING_IDX = 0

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

ITEMS_FILE = "items.parquet"
SEQUENCES_FILE = "sequences.parquet"
STATS_FILE = "stats.json"


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


def positions_from_end(sizes: np.ndarray) -> np.ndarray:
    """For consecutive groups of the given sizes, each row's position counted from its group's end (last = 1)."""
    ends = np.cumsum(sizes)
    return np.repeat(ends, sizes) - np.arange(int(ends[-1]) if len(ends) else 0)


def split_places(sequences: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All sequences' items flattened, the row of each, and its place in the leave-one-out split
    (1 test, 2 valid, > 2 train): statistics over a million users without a Python loop over them."""
    lists = sequences.combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if (lengths < 3).any():
        raise ValueError(f"leave-one-out needs at least 3 interactions, got {int(lengths.min())}")
    items = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.repeat(np.arange(len(lengths)), lengths), items, positions_from_end(lengths)


def train_counts(sequences: Sequence[Sequence[int]] | pa.ChunkedArray, items: int) -> np.ndarray:
    """(items + 1,) each item's occurrences in the users' training parts, row 0 the padding: items.parquet's train_count."""
    lists = sequences if isinstance(sequences, pa.ChunkedArray) else pa.chunked_array([pa.array(sequences, pa.list_(pa.int64()))])
    _, flat, place = split_places(lists)
    return np.bincount(flat[place > 2], minlength=items + 1).astype(np.int64)


def left_pad(items: Sequence[int], length: int) -> list[int]:
    """The last `length` items, padded on the left with 0 so the latest item is always last."""
    kept = list(items)[-length:]
    return [PADDING_IDX] * (length - len(kept)) + kept


def read_processed(processed: Path) -> tuple[pa.Table, pa.Table]:
    produced_by = f"odmt prepare --out {processed}"
    return (
        read_parquet(processed / ITEMS_FILE, ITEMS, produced_by),
        read_parquet(processed / SEQUENCES_FILE, SEQUENCES, produced_by),
    )


def write_processed(out: Path, items: pa.Table, sequences: pa.Table, stats: dict[str, Any]) -> dict[str, Any]:
    """Write the processed contract to `out` and return `stats`: the one writer of its tables (prepare, the tuning
    set, the synthetic set), each file atomic, so every processed set is what read_processed checks."""
    for name, table, schema in ((ITEMS_FILE, items, ITEMS), (SEQUENCES_FILE, sequences, SEQUENCES)):
        if not table.schema.equals(schema):
            raise ValueError(f"{out / name}: the table's schema {table.schema} is not the processed contract's {schema}")
    write_parquet(out / ITEMS_FILE, items)
    write_parquet(out / SEQUENCES_FILE, sequences)
    write_json(out / STATS_FILE, stats)
    return stats
