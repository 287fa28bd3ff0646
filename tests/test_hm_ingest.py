import csv
import datetime as dt
from dataclasses import replace

import pytest

from pipeline.errors import InputError
from pipeline.formats.hm import HMConfig, ingest_hm
from tests.conftest import ARTICLES_HEADER, HM_MINI, article_row, jpeg_bytes, transactions_csv, write_hm_raw
from tests.sources import assert_counts_add_up, read_interim

A, B, C = "0663713001", "0541518023", "0505221004"


def ingest(raw, tmp_path, config=HMConfig()):
    report = ingest_hm(raw, tmp_path / "interim", config)
    return report, *read_interim(tmp_path / "interim")


def day(text):
    return int(dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp())


def test_embedded_sample_matches_an_independent_reading(tmp_path):
    report, interactions, items = ingest(HM_MINI, tmp_path)
    with (HM_MINI / "transactions_train.csv").open() as file:
        rows = [(r["customer_id"], r["article_id"].zfill(10), day(r["t_dat"])) for r in csv.DictReader(file)]
    expected = list(dict.fromkeys(rows))  # first occurrence of each (customer, article, day), file order
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in interactions] == expected
    counts = report["files"]["transactions_train.csv"]
    assert counts["records_read"] == len(rows)
    assert counts["dropped"]["duplicate_same_day"] == len(rows) - len(expected)
    assert_counts_add_up(report)
    with (HM_MINI / "articles.csv").open() as file:
        articles = list(csv.DictReader(file))
    assert len(items) == len(articles)
    first = articles[0]
    assert items[first["article_id"]]["text"] == " ".join(first[c] for c in HMConfig().text_columns)
    assert all((HM_MINI / item["image_path"]).is_file() for item in items.values())


def test_small_blocks_stream_to_the_same_tables(tmp_path):
    _, whole, _ = ingest(HM_MINI, tmp_path / "a")
    _, streamed, _ = ingest(HM_MINI, tmp_path / "b", replace(HMConfig(), block_size_bytes=1 << 16))
    assert streamed == whole


def test_ids_without_leading_zero_join_articles_and_images(tmp_path):
    raw = write_hm_raw(tmp_path / "raw", transactions_csv([("2020-01-01", "u1", A.lstrip("0"))]), photos={A: jpeg_bytes()})
    _, interactions, items = ingest(raw, tmp_path)
    assert interactions[0]["item_id"] == A
    assert items[A]["image_path"] == f"images/066/{A}.jpg"


def test_duplicates_collapse_and_ties_keep_file_order(tmp_path):
    rows = [("2020-01-02", "u1", B), ("2020-01-02", "u1", A), ("2020-01-02", "u1", B), ("2020-01-01", "u2", C)]
    raw = write_hm_raw(tmp_path / "raw", transactions_csv(rows), photos={A: jpeg_bytes(), B: jpeg_bytes()})
    report, interactions, _ = ingest(raw, tmp_path)
    assert [(r["user_id"], r["item_id"]) for r in interactions] == [("u1", B), ("u1", A), ("u2", C)]
    assert report["files"]["transactions_train.csv"]["dropped"]["duplicate_same_day"] == 1
    _, kept_all, _ = ingest(raw, tmp_path / "all", replace(HMConfig(), collapse_duplicates=False))
    assert len(kept_all) == 4


def test_bad_records_are_counted_drops(tmp_path):
    text = transactions_csv([("2020-01-01", "u1", A), ("2020-13-45", "u1", A), ("2020-01-03", "u1", "66x3"), ("2020-01-04", "", A)])
    text += "2020-01-05,u1\n"  # too few fields
    raw = write_hm_raw(tmp_path / "raw", text, photos={A: jpeg_bytes()})
    report, interactions, _ = ingest(raw, tmp_path)
    assert len(interactions) == 1
    assert report["files"]["transactions_train.csv"]["dropped"] == {
        "bad_article_id": 1,
        "bad_date": 1,
        "duplicate_same_day": 0,
        "malformed_row": 1,
        "missing_customer_id": 1,
    }
    assert report["files"]["transactions_train.csv"]["records_read"] == 5


def test_quoted_fields_with_commas_and_newlines(tmp_path):
    articles = ARTICLES_HEADER + article_row(A, name='"Tee, long\nsleeve"', desc='"Line one\nline, two"') + article_row(B)
    raw = write_hm_raw(tmp_path / "raw", transactions_csv([("2020-01-01", "u1", A)]), articles, {A: jpeg_bytes()})
    report, _, items = ingest(raw, tmp_path)
    assert items[A]["text"] == "Tee, long\nsleeve T-shirt Garment Upper body Solid Black"
    assert items[B]["image_path"] is None
    assert report["files"]["articles.csv"]["notes"]["without_image_file"] == 1


def test_articles_without_text_and_repeated_ids(tmp_path):
    articles = ARTICLES_HEADER + f"{A},663713,,,,,,,,,\n" + article_row(B) + article_row(B, name="Other")
    raw = write_hm_raw(tmp_path / "raw", transactions_csv([("2020-01-01", "u1", A)]), articles)
    report, _, items = ingest(raw, tmp_path)
    assert items[A]["text"] is None
    assert items[B]["text"].startswith("Tee ")
    assert report["files"]["articles.csv"]["dropped"]["duplicate_article_id"] == 1


@pytest.mark.parametrize(
    ("transactions", "message"),
    [
        ("t_dat,customer_id,price\n2020-01-01,u1,0.1\n", r"transactions_train.csv, line 1: missing column\(s\) \['article_id'\]"),
        ("t_dat,customer_id,article_id,price,sales_channel_id\n", "header but no records"),
        ("", "empty file"),
        (transactions_csv([("2020-01-01", "u1", A)]) + "2020-01-02,caf\xe9,{A},0.1,2\n", None),
    ],
)
def test_unusable_files_name_the_file_and_line(tmp_path, transactions, message):
    raw = write_hm_raw(tmp_path / "raw", transactions, photos={A: jpeg_bytes()})
    if message is None:  # latin-1 bytes on line 3
        (raw / "transactions_train.csv").write_bytes(transactions.encode("latin-1"))
        message = r"transactions_train.csv, line 3: bytes that are not UTF-8"
    with pytest.raises(InputError, match=message):
        ingest(raw, tmp_path)


def test_empty_raw_folder_lists_the_expected_layout(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(InputError, match=r"transactions_train.csv', 'articles.csv'\] not found"):
        ingest(tmp_path / "raw", tmp_path)
