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

import pyarrow as pa

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


def write_interim(out: Path, interactions: pa.Table, items: pa.Table, report: dict[str, Any]) -> None:
    write_parquet(out / INTERACTIONS_FILE, interactions.cast(INTERACTIONS))
    write_parquet(out / ITEMS_FILE, items.cast(ITEMS))
    write_json(out / REPORT_FILE, report)


def read_interim(interim: Path) -> tuple[pa.Table, pa.Table]:
    produced_by = f"odmt ingest <source> --out {interim}"
    return (
        read_parquet(interim / INTERACTIONS_FILE, INTERACTIONS, produced_by),
        read_parquet(interim / ITEMS_FILE, ITEMS, produced_by),
    )
