"""H&M Personalized Fashion Recommendations (Kaggle), raw layout -> interim tables.

raw/transactions_train.csv  t_dat (day), customer_id, article_id, price, sales_channel_id
raw/articles.csv            article_id and 24 descriptive columns
raw/images/<3 digits>/<article_id>.jpg

The full download stores article_id without its leading zero in transactions but with
it in articles and image names; ids are padded to ten digits before any join.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import InputError
from pipeline.formats.config import HMConfig
from pipeline.formats.csvfiles import stream_csv
from pipeline.formats.interim import (
    FileReport,
    InteractionBatches,
    blank_to_null,
    count_failures,
    distinct_items,
    first_occurrences,
    join_text,
    write_interim,
)

log = logging.getLogger(__name__)

TRANSACTIONS = "transactions_train.csv"
ARTICLES = "articles.csv"
ARTICLE_ID_DIGITS = 10


def image_path(article_id: str) -> str:
    """Where the Kaggle layout keeps an article's photo, relative to the raw root."""
    return f"images/{article_id[:3]}/{article_id}.jpg"


def ingest_hm(raw: Path, out: Path, config: HMConfig) -> dict[str, Any]:
    """Read the raw Kaggle layout under `raw`, write the interim tables to `out`, return the report."""
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder. Pass the folder holding {TRANSACTIONS} and {ARTICLES}.")
    missing = [name for name in (TRANSACTIONS, ARTICLES) if not (raw / name).is_file()]
    if missing:
        raise InputError(
            f"{raw}: {missing} not found. Expected the Kaggle layout: {TRANSACTIONS}, {ARTICLES}, images/<first 3 digits>/<article_id>.jpg."
        )
    transactions_report, articles_report = FileReport(), FileReport()
    interactions = read_transactions(raw / TRANSACTIONS, config, transactions_report)
    items = read_articles(raw / ARTICLES, raw, config, articles_report)
    report = {
        "source": "hm",
        "files": {TRANSACTIONS: transactions_report.as_dict(), ARTICLES: articles_report.as_dict()},
    }
    write_interim(out, interactions, items, report)
    return report


def read_transactions(path: Path, config: HMConfig, report: FileReport) -> pa.Table:
    """Interactions in file order; exact duplicates (customer, article, day) collapsed if configured."""
    batches = InteractionBatches()
    for batch in stream_csv(path, ("t_dat", "customer_id", "article_id"), report, config.block_size_bytes):
        user_id = pc.utf8_trim_whitespace(batch["customer_id"])
        item_id, id_ok = normalise_article_ids(batch["article_id"])
        day = pc.strptime(batch["t_dat"], format="%Y-%m-%d", unit="s", error_is_null=True)
        checks = {
            "missing_customer_id": pc.fill_null(pc.greater(pc.utf8_length(user_id), 0), False),
            "bad_article_id": id_ok,
            "bad_date": pc.is_valid(day),
        }
        keep = count_failures(checks, report)
        batches.add(user_id.filter(keep), item_id.filter(keep), day.filter(keep).cast(pa.int64()))
    table = batches.coded()
    if config.collapse_duplicates:
        table = first_occurrences(table, ["user_id", "item_id", "timestamp"], "duplicate_same_day", report)
    report.records_kept = table.num_rows
    return batches.decode(table)


def read_articles(path: Path, raw: Path, config: HMConfig, report: FileReport) -> pa.Table:
    """One row per article: the configured text columns joined, and the photo if its file exists."""
    parts = []
    for batch in stream_csv(path, ("article_id", *config.text_columns), report, config.block_size_bytes):
        item_id, id_ok = normalise_article_ids(batch["article_id"])
        text = join_text([blank_to_null(batch[name]).to_pylist() for name in config.text_columns], config.text_separator)
        keep = count_failures({"bad_article_id": id_ok}, report)
        parts.append(pa.table({"item_id": item_id, "text": text}).filter(keep))
    table = distinct_items(parts, "duplicate_article_id", report)
    paths = [image_path(item) for item in table["item_id"].to_pylist()]
    found = [p if (raw / p).is_file() else None for p in paths]
    report.notes["without_image_file"] = found.count(None)
    return table.append_column("image_path", pa.array(found, pa.string()))


def normalise_article_ids(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Zero-pad article ids to ten digits; the mask is False for ids that are not 1-10 digits."""
    ids = pc.utf8_trim_whitespace(ids)
    ok = pc.fill_null(pc.match_substring_regex(ids, rf"^[0-9]{{1,{ARTICLE_ID_DIGITS}}}$"), False)
    return pc.utf8_lpad(ids, width=ARTICLE_ID_DIGITS, padding="0"), ok
