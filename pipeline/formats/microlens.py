"""MicroLens (westlake-repl; the paper's "Stream" dataset), raw layout -> interim tables.

raw/MicroLens-50k_pairs.csv          user,item,timestamp (epoch milliseconds), with a header
raw/MicroLens-50k_pairs.tsv          user<TAB>item item ... (oldest first), no header, no times
raw/MicroLens-50k_titles.csv         item,title (UTF-8, Chinese or English), with a header;
                                     the 100k release's MicroLens-100k_title_en.csv may lack it
raw/MicroLens-50k_covers/<item>.jpg  one cover picture per item
raw/MicroLens-50k_likes_and_views.txt  item<TAB>likes<TAB>views: not used by the model, ignored

Either pairs file gives the interactions (the CSV when both are there). The CSV's rows
are stably sorted by their milliseconds before these are truncated to seconds, so that
two views within one second keep their true order; the file itself is not in time order.
The TSV has no times: each interaction's timestamp is its position in the file (0, 1,
2, ...), which grows along every user's line and so keeps each user's order.

Items are the lines of the titles file; a viewed item without one is counted in the
report (prepare drops it, having no text). A titles file has a header when the first
field of its line 1 is not a whole number (MicroLens item ids are whole numbers);
`titles_header` overrides that guess.
"""

from __future__ import annotations

import csv
import re
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import InputError
from pipeline.formats.config import MicroLensConfig
from pipeline.formats.csvfiles import MALFORMED, first_non_utf8_line, stream_csv
from pipeline.formats.interim import (
    FileReport,
    InteractionBatches,
    blank_to_null,
    count_failures,
    distinct_items,
    write_interim,
)
from pipeline.formats.rawfiles import read_sequences

PAIRS_PATTERNS = ("*_pairs.csv", "*_pairs.tsv")  # in order of preference
TITLES_PATTERNS = ("*_titles.csv", "*_title_en.csv")
COVERS_PATTERNS = ("*_covers",)
PAIRS_COLUMNS = ("user", "item", "timestamp")
TITLES_COLUMNS = ("item", "title")
MILLISECONDS_PER_SECOND = 1000
ITEM_ID = re.compile(r"[0-9]+")
# Whole milliseconds of at most 18 digits: always fit an int64.
TIMESTAMP_PATTERN = r"^[0-9]{1,18}$"


def ingest_microlens(raw: Path, out: Path, config: MicroLensConfig) -> dict[str, Any]:
    """Read the MicroLens download under `raw`, write the interim tables to `out`, return the report."""
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder. Pass the folder holding MicroLens-*_pairs.csv, *_titles.csv and *_covers/.")
    pairs = raw / (config.pairs or find_one(raw, PAIRS_PATTERNS, "pairs"))
    titles = raw / (config.titles or find_one(raw, TITLES_PATTERNS, "titles"))
    covers = config.covers or find_one(raw, COVERS_PATTERNS, "covers")
    for path in (pairs, titles):
        if not path.is_file():
            raise InputError(f"{path}: file not found. Check ingest.microlens in params.yaml.")
    if not (raw / covers).is_dir():
        raise InputError(f"{raw / covers}: folder not found. Check ingest.microlens.covers in params.yaml.")

    pairs_report, titles_report = FileReport(), FileReport()
    if pairs.suffix == ".csv":
        interactions = read_pairs_csv(pairs, config, pairs_report)
        timestamps = "epoch milliseconds truncated to seconds, rows stably sorted by the milliseconds"
    else:
        interactions = read_sequences(pairs, config.batch_lines, pairs_report)
        timestamps = "synthetic: each interaction's position in the pairs file (the TSV has no times)"
    items, has_header = read_titles(titles, config.titles_header, titles_report)
    item_ids = items["item_id"].to_pylist()
    paths = [f"{covers}/{config.cover_name.format(item=item)}" for item in item_ids]
    found = [path if (raw / path).is_file() else None for path in paths]
    titles_report.notes["without_cover_file"] = found.count(None)
    known = set(item_ids)
    pairs_report.notes["items_without_title_line"] = sum(item not in known for item in pc.unique(interactions["item_id"]).to_pylist())
    report = {
        "source": "microlens",
        "timestamps": timestamps,
        "titles_header": has_header,
        "files": {pairs.name: pairs_report.as_dict(), titles.name: titles_report.as_dict()},
    }
    write_interim(out, interactions, items.append_column("image_path", pa.array(found, pa.string())), report)
    return report


def find_one(raw: Path, patterns: tuple[str, ...], field: str) -> str:
    """Name of the single entry of `raw` matching the first of `patterns` that matches anything."""
    for pattern in patterns:
        found = sorted(path.name for path in raw.glob(pattern))
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"{raw}: several {pattern}: {found}. Set ingest.microlens.{field} to the one to read.")
    raise InputError(
        f"{raw}: no {' or '.join(patterns)} found. Download it from the MicroLens release, "
        f"or set ingest.microlens.{field} to its name in this folder."
    )


def read_pairs_csv(path: Path, config: MicroLensConfig, report: FileReport) -> pa.Table:
    """Interactions sorted by time (stable: equal milliseconds keep file order), in seconds."""
    batches = InteractionBatches()
    for batch in stream_csv(path, PAIRS_COLUMNS, report, config.block_size_bytes):
        user_id = blank_to_null(batch["user"])
        item_id = blank_to_null(batch["item"])
        milliseconds = pc.utf8_trim_whitespace(batch["timestamp"])
        checks = {
            "missing_user": pc.is_valid(user_id),
            "missing_item": pc.is_valid(item_id),
            "bad_timestamp": pc.fill_null(pc.match_substring_regex(milliseconds, TIMESTAMP_PATTERN), False),
        }
        keep = count_failures(checks, report)
        batches.add(user_id.filter(keep), item_id.filter(keep), milliseconds.filter(keep).cast(pa.int64()))
    table = batches.coded()
    milliseconds = table["timestamp"].to_numpy()
    order = np.argsort(milliseconds, kind="stable")
    report.records_kept = table.num_rows
    return batches.decode(table.take(order), pa.array(milliseconds[order] // MILLISECONDS_PER_SECOND))


def read_titles(path: Path, header: bool | None, report: FileReport) -> tuple[pa.Table, bool]:
    """item_id and text (null when blank), first line of a repeated item kept; and whether line 1 was a header."""
    item_ids: list[str] = []
    texts: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as file:
        rows = csv.reader(file)
        try:
            first = next(rows, [])
            if header is None:
                header = starts_with_header(first)
            item_column, title_column = title_columns(path, first) if header else (0, 1)
            width = len(first) if header else len(TITLES_COLUMNS)
            for row in rows if header else chain([first], rows):
                if not row:  # a blank line is no record
                    continue
                report.records_read += 1
                if len(row) != width:
                    report.dropped[MALFORMED] += 1
                elif not row[item_column].strip():
                    report.dropped["missing_item_id"] += 1
                else:
                    item_ids.append(row[item_column].strip())
                    texts.append(row[title_column])
        except UnicodeDecodeError as error:
            raise InputError(
                f"{path}, line {first_non_utf8_line(path)}: bytes that are not UTF-8 ({error.reason}). Re-encode the file as UTF-8."
            ) from error
    if not item_ids:
        raise InputError(
            f"{path}: none of its {report.records_read} records is `item,title` with {width} fields. "
            "Expected the MicroLens comma-separated titles file."
        )
    table = pa.table({"item_id": pa.array(item_ids, pa.string()), "text": blank_to_null(pa.array(texts, pa.string()))})
    return distinct_items([table], "duplicate_item_id", report), header


def starts_with_header(first: list[str]) -> bool:
    """Whether line 1 is a header: its first field is not a whole number, as every MicroLens item id is."""
    return bool(first) and ITEM_ID.fullmatch(first[0].strip()) is None


def title_columns(path: Path, header: list[str]) -> tuple[int, int]:
    """Positions of `item` and `title` in the header line, or an InputError naming what is there."""
    names = [name.strip() for name in header]
    missing = [name for name in TITLES_COLUMNS if name not in names]
    if missing:
        raise InputError(
            f"{path}, line 1: missing column(s) {missing}; the header has {header}. Expected `item,title`; "
            "if the file has no header, set ingest.microlens.titles_header: false."
        )
    return names.index("item"), names.index("title")
