"""The interim contract: what every ingest reader writes and prepare reads (DESIGN.md).

interactions.parquet  user_id, item_id, timestamp (int64 seconds), in source order so
                      that equal timestamps keep the order the source gave them.
items.parquet         item_id (unique), text (null when the source has none),
                      image_path relative to the raw root (null when there is no file).
ingest_report.json    per input file: records read, kept, and dropped per reason.
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


def write_interim(out: Path, interactions: pa.Table, items: pa.Table, report: dict[str, Any]) -> None:
    """Write the interim tables; string columns may be dictionary-encoded (readers get plain strings)."""
    write_parquet(out / INTERACTIONS_FILE, conform(interactions, INTERACTIONS))
    write_parquet(out / ITEMS_FILE, conform(items, ITEMS))
    write_json(out / REPORT_FILE, report)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table`'s columns in `schema`'s order and types, leaving dictionary-encoded strings encoded."""
    columns = []
    for field in schema:
        column = table[field.name]
        encoded = pa.types.is_dictionary(column.type) and column.type.value_type == field.type
        columns.append(column if encoded else column.cast(field.type))
    return pa.table(columns, names=schema.names)


def read_interim(interim: Path) -> tuple[pa.Table, pa.Table]:
    produced_by = f"odmt ingest <source> --out {interim}"
    return (
        read_parquet(interim / INTERACTIONS_FILE, INTERACTIONS, produced_by),
        read_parquet(interim / ITEMS_FILE, ITEMS, produced_by),
    )
