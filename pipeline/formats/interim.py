"""The interim contract: what every ingest reader writes and prepare reads (docs/design.md).

interactions.parquet  user_id, item_id, timestamp (int64 seconds), in source order so
                      that equal timestamps keep the order the source gave them.
items.parquet         item_id (unique), text (null when the source has none),
                      image_path relative to the raw root (null when there is no file).
ingest_report.json    per input file: records read, kept, and dropped per reason.

Also what every reader uses to produce them: the int-coded interaction batches, the
one-row-per-item table, and the column helpers that count each dropped record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.artifacts import read_parquet, write_json, write_parquet

INTERACTIONS = pa.schema([("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.int64())])
ITEMS = pa.schema([("item_id", pa.string()), ("text", pa.string()), ("image_path", pa.string())])

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
REPORT_FILE = "ingest_report.json"


@dataclass
class FileReport:
    """What became of the records of one input file: nothing disappears uncounted."""

    records_read: int = 0
    records_kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)  # kept records worth knowing about

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "records_kept": self.records_kept,
            "dropped": dict(sorted(self.dropped.items())),
            "notes": dict(sorted(self.notes.items())),
        }


class Vocabulary:
    """Distinct strings -> dense int32 codes, growing across streamed batches.

    A reader keeps one int per row and each id string once, so a 31.8-million-row file
    does not hold 31.8 million copies of 64-character customer ids.
    """

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def encode(self, strings: pa.Array) -> pa.Array:
        """Codes of `strings` (no nulls), new strings getting the next free codes."""
        encoded = pc.dictionary_encode(strings)
        distinct = encoded.dictionary.to_pylist()
        codes = np.fromiter((self._codes.setdefault(s, len(self._codes)) for s in distinct), np.int32, len(distinct))
        return pa.array(codes[encoded.indices.to_numpy(zero_copy_only=False)])

    def decode(self, codes: pa.ChunkedArray) -> pa.DictionaryArray:
        """The strings of `codes`, as a dictionary column (written to parquet without expanding)."""
        return pa.DictionaryArray.from_arrays(codes.combine_chunks(), pa.array(list(self._codes), pa.string()))


class InteractionBatches:
    """The interactions of a streamed file, kept as int32 user and item codes until the end.

    Readers add one batch at a time and de-duplicate or sort the coded table, which is
    far smaller than one with the id strings; `decode` turns it into the interim table.
    """

    def __init__(self) -> None:
        self.users, self.items = Vocabulary(), Vocabulary()
        self.count = 0  # interactions added so far
        self._parts: list[pa.Table] = []

    def add(self, user_id: pa.Array, item_id: pa.Array, timestamp: pa.Array) -> None:
        """Append one batch of equally long columns (ids without nulls)."""
        self._parts.append(pa.table({"user_id": self.users.encode(user_id), "item_id": self.items.encode(item_id), "timestamp": timestamp}))
        self.count += len(timestamp)

    def positions(self, length: int) -> pa.Array:
        """Timestamps for formats without times: the next `length` interactions' positions in the file."""
        return pa.array(range(self.count, self.count + length), pa.int64())

    def coded(self) -> pa.Table:
        """All batches as one table of user_id and item_id codes and the timestamps as added."""
        empty = pa.table({"user_id": pa.array([], pa.int32()), "item_id": pa.array([], pa.int32()), "timestamp": pa.array([], pa.int64())})
        return pa.concat_tables(self._parts) if self._parts else empty

    def decode(self, table: pa.Table, timestamp: pa.Array | pa.ChunkedArray | None = None) -> pa.Table:
        """The interim interactions of `table` (rows of `coded()`); `timestamp`, if given, replaces its own."""
        return pa.table(
            {
                "user_id": self.users.decode(table["user_id"]),
                "item_id": self.items.decode(table["item_id"]),
                "timestamp": table["timestamp"] if timestamp is None else timestamp,
            }
        )


def distinct_items(parts: list[pa.Table], duplicate: str, report: FileReport) -> pa.Table:
    """The item_id and text rows of `parts`, the first row of a repeated item kept.

    The others are dropped as `duplicate` (each reader names the id its source uses). No
    rows at all (every line dropped) is an empty table: prepare then drops every item, counted.
    """
    empty = pa.table({"item_id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    table = first_occurrences(pa.concat_tables(parts) if parts else empty, ["item_id"], duplicate, report)
    report.notes["without_text"] = table["text"].null_count
    report.records_kept = table.num_rows
    return table


def blank_to_null(strings: pa.Array) -> pa.Array:
    """`strings` trimmed, empty ones null: a blank field is a missing one."""
    trimmed = pc.utf8_trim_whitespace(strings)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def join_text(columns: list[list[str | None]], separator: str) -> pa.Array:
    """Row-wise join of the non-null fields; null where a row has none.

    (pyarrow's binary_join_element_wise with null_handling="skip" drops such rows instead.)
    """
    joined = [separator.join(field for field in fields if field is not None) for fields in zip(*columns)]
    return pa.array([text or None for text in joined], pa.string())


def count_failures(checks: dict[str, pa.Array], report: FileReport) -> pa.Array:
    """AND of the boolean `checks`; each dropped row is counted under the first check it fails."""
    keep = pa.array(np.ones(len(next(iter(checks.values()))), dtype=bool))
    for reason, ok in checks.items():
        report.dropped[reason] += pc.sum(pc.and_(keep, pc.invert(ok))).as_py() or 0
        keep = pc.and_(keep, ok)
    return keep


def first_occurrences(table: pa.Table, keys: list[str], duplicate: str, report: FileReport) -> pa.Table:
    """Rows of `table` whose `keys` were not seen in an earlier row, in original order.

    The repeats are counted as `duplicate` drops: nothing disappears uncounted. The keys
    become one int64 per row and a sort finds each value's first row: on the 31.8M H&M
    rows a group-by on the key columns took 3.0 GB beyond its input, this 1.7 GB.
    """
    _, first = np.unique(row_codes(table, keys), return_index=True)
    report.dropped[duplicate] += table.num_rows - len(first)
    return table.take(np.sort(first))


def row_codes(table: pa.Table, keys: list[str]) -> np.ndarray:
    """(rows,) int64, equal exactly where all `keys` are equal (nulls equal nulls)."""
    code, distinct = np.zeros(table.num_rows, np.int64), 1
    for key in keys:
        column = pc.dictionary_encode(table[key], null_encoding="encode").combine_chunks()
        values = len(column.dictionary)
        if distinct * values >= 2**63:  # number the codes so far densely before the product overflows
            code = np.unique(code, return_inverse=True)[1].astype(np.int64)
            distinct = int(code.max()) + 1
        code = code * values + column.indices.to_numpy(zero_copy_only=False)
        distinct *= values
    return code


def write_interim(out: Path, interactions: pa.Table, items: pa.Table, report: dict[str, Any]) -> None:
    """Write the interim tables; string columns may be dictionary-encoded (parquet stores strings either way).

    The interactions go in one row group: parquet stores a dictionary-encoded column's whole
    dictionary in every row group, which for H&M's 1.4M customer ids is 88 MB per million rows.
    """
    one_group = max(1, interactions.num_rows)
    write_parquet(out / INTERACTIONS_FILE, conform(interactions, INTERACTIONS), row_group_size=one_group)
    write_parquet(out / ITEMS_FILE, conform(items, ITEMS))
    write_json(out / REPORT_FILE, report)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table`'s columns in `schema`'s order and types, leaving dictionary-encoded strings encoded."""
    columns = []
    for wanted in schema:
        column = table[wanted.name]
        encoded = pa.types.is_dictionary(column.type) and column.type.value_type == wanted.type
        columns.append(column if encoded else column.cast(wanted.type))
    return pa.table(columns, names=schema.names)


def read_interim(interim: Path) -> tuple[pa.Table, pa.Table]:
    """The interim tables of `interim`, the interactions' ids dictionary-encoded (each distinct id held once)."""
    produced_by = f"odmt ingest <source> --out {interim}"
    return (
        read_parquet(interim / INTERACTIONS_FILE, INTERACTIONS, produced_by, dictionary=("user_id", "item_id")),
        read_parquet(interim / ITEMS_FILE, ITEMS, produced_by),
    )
