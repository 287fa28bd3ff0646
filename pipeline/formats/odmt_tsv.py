"""The ODMT authors' processed format -> interim tables.

raw/{tag}_user_behaviours.tsv  user<TAB>item item item ... (oldest first), no header
raw/{tag}_text.tsv             item<TAB>text (the text may hold more tabs), no header
raw/{tag}_image.lmdb           LMDB environment (a folder, or a single file): key = item id,
                               value = a pickled `LMDB_Image` (uint8 RGB pixels) or JPEG/PNG bytes;
                               `__keys__` and `__len__` are the builder's bookkeeping, not items

The format has no times. Each interaction's timestamp is its position in the behaviours
file (0, 1, 2, ... over the whole file), so every user's items keep their order, even
for a user whose sequence is split over several lines.

Images stay in the LMDB: image_path is `lmdb:{tag}_image.lmdb#<item>` (see
pipeline/formats/images.py), set for items that have a key in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import InputError
from pipeline.formats.config import OdmtTsvConfig
from pipeline.formats.images import lmdb_environment, lmdb_image_path
from pipeline.formats.interim import FileReport, blank_to_null, distinct_items, write_interim
from pipeline.formats.rawfiles import batched, keyed_lines, only_one, read_sequences

BEHAVIOURS_SUFFIX = "_user_behaviours.tsv"
TEXT_SUFFIX = "_text.tsv"
IMAGES_SUFFIX = "_image.lmdb"
BOOKKEEPING_KEYS = (b"__keys__", b"__len__")
TEXT_LINE = "`item<TAB>text`"


def ingest_odmt_tsv(raw: Path, out: Path, config: OdmtTsvConfig) -> dict[str, Any]:
    """Read the authors' files under `raw`, write the interim tables to `out`, return the report."""
    tag = config.tag or find_tag(raw)
    behaviours, text, image_lmdb = (raw / f"{tag}{suffix}" for suffix in (BEHAVIOURS_SUFFIX, TEXT_SUFFIX, IMAGES_SUFFIX))
    missing = [path.name for path in (behaviours, text) if not path.is_file()]
    if not image_lmdb.exists():
        missing.append(image_lmdb.name)
    if missing:
        raise InputError(
            f"{raw}: {missing} not found. Expected the ODMT authors' files {behaviours.name}, {text.name} "
            f"and {image_lmdb.name} (an LMDB folder or file)."
        )
    reports = {path.name: FileReport() for path in (behaviours, text, image_lmdb)}
    interactions = read_sequences(behaviours, config.batch_lines, reports[behaviours.name])
    items = read_texts(text, config.batch_lines, reports[text.name])
    item_ids = items["item_id"].to_pylist()
    known = set(item_ids)
    with_image = read_image_keys(image_lmdb, known, reports[image_lmdb.name])
    paths = [lmdb_image_path(image_lmdb.name, item) if item in with_image else None for item in item_ids]
    reports[text.name].notes["without_image"] = paths.count(None)
    reports[behaviours.name].notes["items_without_text_line"] = sum(
        item not in known for item in pc.unique(interactions["item_id"]).to_pylist()
    )
    report = {
        "source": "odmt-tsv",
        "timestamps": "synthetic: each interaction's position in the behaviours file (the format has no times)",
        "files": {name: file_report.as_dict() for name, file_report in reports.items()},
    }
    write_interim(out, interactions, items.append_column("image_path", pa.array(paths, pa.string())), report)
    return report


def find_tag(raw: Path) -> str:
    """The prefix of the one `*_user_behaviours.tsv` in `raw`."""
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder. Pass the folder holding {{tag}}{BEHAVIOURS_SUFFIX}.")
    tags = sorted(path.name.removesuffix(BEHAVIOURS_SUFFIX) for path in raw.glob(f"*{BEHAVIOURS_SUFFIX}"))
    setting = "ingest.odmt_tsv.tag to the prefix of the files to read"
    return only_one(raw, tags, "several datasets", f"no *{BEHAVIOURS_SUFFIX}", setting)


def read_texts(path: Path, batch_lines: int, report: FileReport) -> pa.Table:
    """item_id and text (null when blank), first line of a repeated item kept."""
    parts = []
    for batch in batched(keyed_lines(path, TEXT_LINE, report), batch_lines):
        item_ids, texts = zip(*batch)
        parts.append(pa.table({"item_id": pa.array(item_ids, pa.string()), "text": blank_to_null(pa.array(texts, pa.string()))}))
    return distinct_items(parts, "duplicate_item_id", report)


def read_image_keys(path: Path, item_ids: set[str], report: FileReport) -> set[str]:
    """The items of `item_ids` stored in the LMDB at `path`; its other entries are counted drops."""
    found = set()
    with lmdb_environment(path).begin() as transaction:
        for key in transaction.cursor().iternext(keys=True, values=False):
            report.records_read += 1
            item = key.decode("utf-8", errors="replace")
            if item in item_ids:
                found.add(item)
            elif key in BOOKKEEPING_KEYS:
                report.dropped["bookkeeping_entry"] += 1
            else:
                report.dropped["no_text_line"] += 1
    report.records_kept = len(found)
    return found
