"""Amazon product reviews (McAuley lab), 2018 and 2014 editions, raw layout -> interim tables.

raw/<Category>.json[.gz]       reviews, one per line: reviewerID, asin, unixReviewTime (seconds), ...
raw/meta_<Category>.json[.gz]  products, one per line: asin, title, brand, category, description,
                               picture URLs under imageURLHighRes/imageURL (image in some categories)
raw/images/<asin>.jpg          the pictures, downloaded by the user: the dumps hold only their URLs

The 2014 edition writes Python literals (single quotes) instead of JSON, names its
reviews `reviews_<Category>[_5].json.gz`, its category lists `categories` (a list of
lists) and its picture URL `imUrl`. Every line is tried as JSON, then as a Python
literal (ast.literal_eval: literals only, never code), so both editions read the same.
A file is gzipped when it starts with gzip's magic bytes, whatever its name says.

Reviews keep the file's order: the dumps are grouped by product, not sorted by time,
but their times are whole seconds, so prepare's stable sort by time orders each user's
history and leaves equal times in file order.

Bad input: a line that is no record (cut short, say) or a review without reviewerID,
asin or unixReviewTime is a counted drop, named in a warning. A file whose first line
is no record is the wrong file, and a gzip file cut short has lost an unknown number of
reviews: both are InputErrors.
"""

from __future__ import annotations

import ast
import gzip
import html
import io
import json
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import InputError
from pipeline.formats.config import AmazonConfig
from pipeline.formats.interim import FileReport, InteractionBatches, distinct_items, first_occurrences, write_interim
from pipeline.formats.rawfiles import batched, only_one

log = logging.getLogger(__name__)

META_PREFIX = "meta_"
JSON_SUFFIXES = (".json", ".json.gz")
# A meta file's reviews: the full file, the 5-core subset, and their 2014 names.
REVIEWS_STEMS = ("{category}", "{category}_5", "reviews_{category}", "reviews_{category}_5")
RENAMED_IN_2014 = {"category": "categories"}
PICTURE_KEYS = ("imageURLHighRes", "imageURL", "image", "imUrl")
GZIP_MAGIC = b"\x1f\x8b"
HTML_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
MALFORMED = "malformed_line"
WARNINGS_PER_REASON = 3


def ingest_amazon(raw: Path, out: Path, config: AmazonConfig) -> dict[str, Any]:
    """Read the reviews and meta files under `raw`, write the interim tables to `out`, return the report."""
    reviews, meta = find_files(raw, config)
    reviews_report, meta_report = FileReport(), FileReport()
    interactions = read_reviews(reviews, config, reviews_report)
    items = read_meta(meta, config, meta_report)
    reviewed = pc.unique(interactions["item_id"]).cast(pa.string())
    reviews_report.notes["items_without_meta_line"] = len(reviewed) - pc.sum(pc.is_in(reviewed, value_set=items["item_id"])).as_py()
    paths = pa.array(image_paths(raw, items["item_id"].to_pylist(), config), pa.string())
    meta_report.notes["without_image_file"] = paths.null_count
    report = {
        "source": "amazon",
        "files": {reviews.name: reviews_report.as_dict(), meta.name: meta_report.as_dict()},
        "images": picture_counts(items, paths, config),
    }
    write_interim(out, interactions, items.drop_columns("url_key").append_column("image_path", paths), report)
    return report


def find_files(raw: Path, config: AmazonConfig) -> tuple[Path, Path]:
    """The reviews and meta files: as configured, else the only meta file and its reviews partner."""
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder. Pass the folder holding <Category>.json.gz and meta_<Category>.json.gz.")
    meta = require_file(raw / config.meta, "meta") if config.meta else only_meta_file(raw)
    reviews = require_file(raw / config.reviews, "reviews") if config.reviews else reviews_partner(meta)
    return reviews, meta


def require_file(path: Path, key: str) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: not found. Set ingest.amazon.{key} to a file name in {path.parent}, or to null to find it.")
    return path


def only_meta_file(raw: Path) -> Path:
    found = sorted(path.name for suffix in JSON_SUFFIXES for path in raw.glob(f"{META_PREFIX}*{suffix}"))
    setting = "ingest.amazon.meta to the name of the one to read"
    return raw / only_one(raw, found, "several meta files", "no meta_<Category>.json[.gz] file", setting)


def reviews_partner(meta: Path) -> Path:
    """The one reviews file of `meta`'s category (full or 5-core, 2018 or 2014 name) beside it."""
    category = meta.name.removeprefix(META_PREFIX).removesuffix(".gz").removesuffix(".json")
    names = [stem.format(category=category) + suffix for stem in REVIEWS_STEMS for suffix in JSON_SUFFIXES]
    found = [name for name in names if (meta.parent / name).is_file()]
    if len(found) != 1:
        what = f"several reviews files {found}" if found else f"no reviews file (looked for {names})"
        raise InputError(f"{meta.parent}: {what} for {meta.name}. Set ingest.amazon.reviews to the name of the one to read.")
    return meta.parent / found[0]


def read_reviews(path: Path, config: AmazonConfig, report: FileReport) -> pa.Table:
    """(user_id, item_id, timestamp) of each usable review in file order; repeats collapsed if configured."""
    batches = InteractionBatches()
    for batch in batched(review_rows(path, report), config.batch_rows):
        user_id, item_id, timestamp = zip(*batch)
        batches.add(pa.array(user_id, pa.string()), pa.array(item_id, pa.string()), pa.array(timestamp, pa.int64()))
    if not batches.count:
        raise nothing_usable(path, report)
    table = batches.coded()
    if config.collapse_duplicates:
        table = first_occurrences(table, ["user_id", "item_id", "timestamp"], "duplicate_review", report)
    report.records_kept = table.num_rows
    return batches.decode(table)


def review_rows(path: Path, report: FileReport) -> Iterator[tuple[str, str, int]]:
    """(reviewerID, asin, unixReviewTime) of each review that has all three; the others are counted drops."""
    for number, record in read_records(path, report):
        user, item, time = identifier(record, "reviewerID"), identifier(record, "asin"), record.get("unixReviewTime")
        if user is None:
            drop(report, "missing_reviewerID", path, number)
        elif item is None:
            drop(report, "missing_asin", path, number)
        elif time is None:
            drop(report, "missing_unixReviewTime", path, number)
        elif type(time) is not int:  # a string, a float, or a bool (which isinstance would take for an int)
            drop(report, "bad_unixReviewTime", path, number)
        else:
            yield user, item, time


def read_meta(path: Path, config: AmazonConfig, report: FileReport) -> pa.Table:
    """item_id, text and url_key (its first picture URL field) per product; a repeated asin's first line kept."""
    parts = []
    for batch in batched(product_rows(path, config, report), config.batch_rows):
        item_id, text, url_key = zip(*batch)
        parts.append(
            pa.table(
                {
                    "item_id": pa.array(item_id, pa.string()),
                    "text": pa.array(text, pa.string()),
                    "url_key": pa.array(url_key, pa.string()),
                }
            )
        )
    if not parts:
        raise nothing_usable(path, report)
    return distinct_items(parts, "duplicate_asin", report)


def product_rows(path: Path, config: AmazonConfig, report: FileReport) -> Iterator[tuple[str, str | None, str | None]]:
    """(asin, text, first picture URL field) of each product line with an asin; the others are counted drops."""
    for number, record in read_records(path, report):
        asin = identifier(record, "asin")
        if asin is None:
            drop(report, "missing_asin", path, number)
            continue
        fields = (field_text(meta_field(record, name), config.text_separator) for name in config.text_fields)
        text = config.text_separator.join(field for field in fields if field) or None
        url_key = next((key for key in PICTURE_KEYS if any(strings(record.get(key)))), None)
        yield asin, text, url_key


def meta_field(record: dict[str, Any], name: str) -> Any:
    """The value of field `name`, looked up under its 2014 name when the record lacks it."""
    return record[name] if name in record else record.get(RENAMED_IN_2014.get(name, name))


def field_text(value: Any, separator: str) -> str | None:
    """A meta field as plain text: list entries (nested in 2014) joined, each distinct entry once.

    Numbers and mappings (a price, a details table) give no text.
    """
    entries = dict.fromkeys(clean(entry) for entry in strings(value))
    return separator.join(entry for entry in entries if entry) or None


def strings(value: Any) -> Iterator[str]:
    """The strings in `value`: itself, or the entries of a (nested) list."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for entry in value:
            yield from strings(entry)


def clean(text: str) -> str:
    """Entities decoded (`&amp;` -> `&`), then tags (`<br>`, `<b>`) replaced by spaces, whitespace runs collapsed."""
    return " ".join(HTML_TAG.sub(" ", html.unescape(text)).split())


def identifier(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return (value.strip() or None) if isinstance(value, str) else None


def image_paths(raw: Path, asins: list[str], config: AmazonConfig) -> list[str | None]:
    """Each product's picture relative to `raw` when its file exists, else None."""
    if not (raw / config.images).is_dir():
        log.warning("%s: no such folder, so no product has a picture", raw / config.images)
        return [None] * len(asins)
    paths = (f"{config.images}/{config.image_name.format(asin=asin)}" for asin in asins)
    return [path if (raw / path).is_file() else None for path in paths]


def picture_counts(items: pa.Table, paths: pa.Array, config: AmazonConfig) -> dict[str, Any]:
    """Where pictures were looked for, which meta fields hold their URLs, and how many are still to download."""
    by_key = pc.value_counts(items["url_key"].drop_null())
    to_download = pc.sum(pc.and_(pc.is_valid(items["url_key"]), pc.is_null(paths))).as_py() or 0
    if to_download:
        log.warning(
            "%s/%s: no file for %d products with a picture URL (in %s); download them there",
            config.images,
            config.image_name,
            to_download,
            by_key.field("values").to_pylist(),
        )
    return {
        "folder": config.images,
        "name": config.image_name,
        "with_image_file": len(paths) - paths.null_count,
        "url_fields": dict(zip(by_key.field("values").to_pylist(), by_key.field("counts").to_pylist())),
        "with_url_but_no_image_file": to_download,
    }


def read_records(path: Path, report: FileReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each non-blank line that holds one; other lines are counted drops.

    The first non-blank line must be a record, else the file is not a dump of this kind.
    """
    number = 0
    try:
        with open_dump(path) as file:
            for number, line in enumerate(file, start=1):
                if line.isspace():
                    continue
                report.records_read += 1
                record = parse_record(line)
                if record is not None:
                    yield number, record
                elif report.records_read == 1:
                    raise InputError(
                        f"{path}, line {number}: not a JSON object nor a Python dict: {line[:80].decode(errors='replace')!r}. "
                        'Amazon review and meta dumps hold one record per line, like {"asin": ...}: is this the right file?'
                    )
                else:
                    drop(report, MALFORMED, path, number)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise InputError(
            f"{path}: the compressed data breaks off after line {number} ({error}). The file is cut short or damaged: download it again."
        ) from error
    if report.records_read == 0:
        raise InputError(f"{path}: empty. Is it the complete file?")


def open_dump(path: Path) -> io.BufferedIOBase:
    """`path` opened for reading bytes, decompressed when it starts with gzip's magic bytes."""
    with path.open("rb") as file:
        gzipped = file.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The dict on `line`, written as JSON (2018) or as a Python literal (2014); None if it holds none."""
    try:
        text = line.decode("utf-8")  # json.loads on str: a third faster than on bytes
    except UnicodeDecodeError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        try:
            record = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return record if isinstance(record, dict) else None


def drop(report: FileReport, reason: str, path: Path, number: int) -> None:
    """Count a skipped line; warn about the first few of each reason, naming the file and line."""
    report.dropped[reason] += 1
    if report.dropped[reason] <= WARNINGS_PER_REASON:
        log.warning("%s, line %d: skipped (%s)", path, number, reason)


def nothing_usable(path: Path, report: FileReport) -> InputError:
    return InputError(f"{path}: none of its {report.records_read} lines is usable: {dict(report.dropped)}.")
