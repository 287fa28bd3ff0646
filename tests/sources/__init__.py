"""Raw-source fixtures: each module writes a small dataset in the exact layout of one real dump.

Also what the tests of every reader check the same way: the interim tables read back,
and a report in which every record read is kept or counted as dropped.
"""

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.formats.interim import INTERACTIONS_FILE, ITEMS_FILE


def read_interim(interim: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The interaction rows in order, and the item rows by item_id, that an ingest wrote to `interim`."""
    interactions = pq.read_table(interim / INTERACTIONS_FILE).to_pylist()
    items = {row["item_id"]: row for row in pq.read_table(interim / ITEMS_FILE).to_pylist()}
    return interactions, items


def assert_counts_add_up(report: dict[str, Any]) -> None:
    for counts in report["files"].values():
        assert counts["records_kept"] + sum(counts["dropped"].values()) == counts["records_read"]
