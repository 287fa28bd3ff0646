"""RecBole atomic files -> interim tables: raw `<name>.inter`/`<name>.item` (`odmt export recbole`
writes the processed set back as atomic files, so RecBole's models run on the very same data).

raw/<name>.inter                 one interaction per line
raw/<name>.item                  one item per line (optional; without it no item has text)
raw/images/<item_id>.<ext>       the items' pictures (RecBole has none; the project's layout)

Both files are tab-separated, and line 1 names every field with its type, `name:type`,
type one of token, token_seq (tokens separated by spaces), float, float_seq:
`user_id:token	item_id:token	rating:float	timestamp:float`.

RecBole's converters never quote a field, so a line is split at every tab and a double
quote is an ordinary character. (pandas, which RecBole reads with, takes a field that
starts with one as CSV-quoted; reading literally keeps an unbalanced quote from
swallowing the lines after it.)

Timestamps (float seconds) become int64 seconds. The interactions keep the file's order,
except when some time has a fraction of a second: then the rows are first sorted by the
precise time (stable, so ties keep the file order), for truncation not to reorder them.
A file without the time field gets each row's position in the file as its timestamp.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import InputError
from pipeline.formats.config import RecBoleConfig
from pipeline.formats.csvfiles import MALFORMED, read_header
from pipeline.formats.interim import (
    FileReport,
    InteractionBatches,
    blank_to_null,
    count_failures,
    distinct_items,
    join_text,
    write_interim,
)
from pipeline.formats.rawfiles import batched, only_one, text_lines

log = logging.getLogger(__name__)

INTER_SUFFIX = ".inter"
ITEM_SUFFIX = ".item"
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
TEXT_TYPES = ("token", "token_seq")


def ingest_recbole(raw: Path, out: Path, config: RecBoleConfig) -> dict[str, Any]:
    """Read the atomic files under `raw`, write the interim tables to `out`, return the report."""
    name = config.name or find_name(raw)
    inter, item = raw / f"{name}{INTER_SUFFIX}", raw / f"{name}{ITEM_SUFFIX}"
    if not inter.is_file():
        raise InputError(f"{inter}: not found. Expected RecBole atomic files {inter.name} and {item.name} in {raw}.")
    reports = {inter.name: FileReport()}
    interactions, timestamps = read_interactions(inter, config, reports[inter.name])
    distinct = pc.unique(interactions["item_id"]).cast(pa.string())
    report: dict[str, Any] = {"source": "recbole", "dataset": name, "timestamps": timestamps}
    if item.is_file():
        reports[item.name] = FileReport()
        items = read_items(item, config, reports[item.name])
        reports[inter.name].notes["items_without_item_line"] = (
            len(distinct) - pc.sum(pc.is_in(distinct, value_set=items["item_id"])).as_py()
        )
    else:
        report["item_file"] = f"{item.name} not found: no item has a text, so prepare will drop them all"
        log.warning("%s: not found; every item gets a null text and prepare will drop them all", item)
        items = pa.table({"item_id": distinct, "text": pa.nulls(len(distinct), pa.string())})
    paths = find_images(raw, items["item_id"].to_pylist(), config)
    report["images"] = {"folder": config.images, "items_without_image_file": paths.count(None)}
    report["files"] = {file_name: file_report.as_dict() for file_name, file_report in reports.items()}
    write_interim(out, interactions, items.append_column("image_path", pa.array(paths, pa.string())), report)
    return report


def find_name(raw: Path) -> str:
    """The stem of the one `*.inter` in `raw`."""
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder. Pass the folder holding <name>{INTER_SUFFIX} and <name>{ITEM_SUFFIX}.")
    names = sorted(path.stem for path in raw.glob(f"*{INTER_SUFFIX}"))
    setting = f"ingest.recbole.name to the <name> of the <name>{INTER_SUFFIX} to read"
    return only_one(raw, names, "several datasets", f"no *{INTER_SUFFIX} file", setting)


def read_typed_header(path: Path) -> dict[str, str]:
    """Field name -> RecBole type, in the order of line 1."""
    header = read_header(path, "\t")
    if len(header) == 1 and header[0].count(":") > 1:
        raise InputError(
            f"{path}, line 1: one single field {header[0]!r}: the fields are not separated by tabs. "
            "RecBole atomic files are tab-separated; convert the file."
        )
    fields: dict[str, str] = {}
    for field in header:
        name, colon, kind = field.partition(":")
        if not colon:
            raise InputError(f"{path}, line 1: field {field!r} has no type. Write it as name:type, e.g. {field}:token.")
        if kind not in FIELD_TYPES:
            raise InputError(
                f"{path}, line 1: field {name!r} has the unknown type {kind!r}. RecBole's types are "
                f"{', '.join(FIELD_TYPES)}; fix the header."
            )
        fields[name] = kind
    return fields


def require(path: Path, fields: dict[str, str], names: list[str], setting: str) -> None:
    missing = [name for name in names if name not in fields]
    if missing:
        raise InputError(
            f"{path}, line 1: no field {missing}; the header has {list(fields)}. Set {setting} in params.yaml to the names this file uses."
        )


def read_interactions(path: Path, config: RecBoleConfig, report: FileReport) -> tuple[pa.Table, str]:
    """The interactions, and how their timestamps were obtained (see the module docstring)."""
    fields = read_typed_header(path)
    require(path, fields, [config.user_field, config.item_field], "ingest.recbole.user_field / item_field")
    has_time = config.time_field in fields
    wanted = [config.user_field, config.item_field, *([config.time_field] if has_time else [])]
    batches = InteractionBatches()
    for batch in read_fields(path, list(fields), wanted, report, config.batch_lines):
        user_id = blank_to_null(pa.array(batch[config.user_field], pa.string()))
        item_id = blank_to_null(pa.array(batch[config.item_field], pa.string()))
        checks = {"missing_user_id": pc.is_valid(user_id), "missing_item_id": pc.is_valid(item_id)}
        if has_time:
            seconds = pa.array([parse_seconds(value) for value in batch[config.time_field]], pa.float64())
            checks["bad_timestamp"] = pc.is_valid(seconds)
        keep = count_failures(checks, report)
        user_id, item_id = user_id.filter(keep), item_id.filter(keep)
        batches.add(user_id, item_id, seconds.filter(keep) if has_time else batches.positions(len(user_id)))
    report.records_kept = batches.count
    if not batches.count:
        raise InputError(f"{path}: none of its {report.records_read} lines is a usable interaction ({dict(report.dropped)} dropped).")
    if has_time:
        table, timestamp, how = whole_seconds(batches.coded())
        return batches.decode(table, timestamp), how
    how = f"synthetic: no {config.time_field} field, so each interaction's position in the file"
    return batches.decode(batches.coded()), how


def whole_seconds(table: pa.Table) -> tuple[pa.Table, pa.Array, str]:
    """`table`, sorted by its float timestamps (stably) only if some have a fraction, and those seconds truncated."""
    seconds = table["timestamp"].to_numpy()
    if (seconds == np.floor(seconds)).all():
        return table, pa.array(seconds.astype(np.int64)), "from the file, in file order"
    order = np.argsort(seconds, kind="stable")
    how = "from the file, sorted by the precise time before truncation to seconds"
    return table.take(order), pa.array(np.floor(seconds[order]).astype(np.int64)), how


def parse_seconds(text: str) -> float | None:
    """A finite float, or None (a counted drop)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_items(path: Path, config: RecBoleConfig, report: FileReport) -> pa.Table:
    """item_id and text (the text fields joined; null when all are blank), first line of a repeated item kept."""
    fields = read_typed_header(path)
    require(path, fields, [config.item_field, *config.text_fields], "ingest.recbole.item_field / text_fields")
    text_fields = config.text_fields or [name for name, kind in fields.items() if kind in TEXT_TYPES and name != config.item_field]
    parts = []
    for batch in read_fields(path, list(fields), [config.item_field, *text_fields], report, config.batch_lines):
        item_id = blank_to_null(pa.array(batch[config.item_field], pa.string()))
        texts = [blank_to_null(pa.array(batch[name], pa.string())).to_pylist() for name in text_fields]
        keep = count_failures({"missing_item_id": pc.is_valid(item_id)}, report)
        parts.append(pa.table({"item_id": item_id, "text": join_text(texts, config.text_separator)}).filter(keep))
    return distinct_items(parts, "duplicate_item_id", report)


def read_fields(path: Path, header: list[str], wanted: list[str], report: FileReport, batch_lines: int) -> Iterator[dict[str, list[str]]]:
    """Batches of the `wanted` fields of the lines after the header, each field a list of strings."""
    positions = [header.index(name) for name in wanted]
    for batch in batched(split_lines(path, len(header), report), batch_lines):
        yield {name: [row[position] for row in batch] for name, position in zip(wanted, positions)}


def split_lines(path: Path, width: int, report: FileReport) -> Iterator[list[str]]:
    """The fields of each line after the header, split at every tab; a line without `width` fields is a counted drop."""
    for number, line in text_lines(path, report, skip_header=True):
        fields = line.split("\t")
        if len(fields) == width:
            yield fields
            continue
        report.dropped[MALFORMED] += 1
        if report.dropped[MALFORMED] <= 3:
            log.warning("%s, line %d: skipped, %d fields where the header has %d", path, number, len(fields), width)
    if report.records_read == 0:
        raise InputError(f"{path}: has a header but no records. Is it the complete file?")


def find_images(raw: Path, item_ids: list[str], config: RecBoleConfig) -> list[str | None]:
    """Each item's picture relative to `raw`: the first configured extension whose file exists, else None."""
    folder = raw / config.images
    if not folder.is_dir():
        log.warning("%s: no such folder, so no item has a picture", folder)
        return [None] * len(item_ids)
    present = {entry.name for entry in os.scandir(folder) if entry.is_file()}
    paths: list[str | None] = []
    for item in item_ids:
        names = (f"{item}.{extension}" for extension in config.image_extensions)
        found = next((name for name in names if name in present), None)
        paths.append(None if found is None else (Path(config.images) / found).as_posix())
    return paths
