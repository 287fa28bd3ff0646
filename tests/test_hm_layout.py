import csv
import shutil
from collections import namedtuple

import pytest
from PIL import Image

from pipeline.errors import InputError
from pipeline.formats.hm import ARTICLES, TRANSACTIONS, HMConfig, ingest_hm
from pipeline.synthetic import hm_layout
from pipeline.synthetic.hm_layout import ARTICLES_HEADER, write_hm_layout
from tests.sources import assert_counts_add_up, read_interim

ROWS, ARTICLE_ROWS, CUSTOMERS = 5000, 300, 400


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    raw = tmp_path_factory.mktemp("hm-layout")
    return raw, write_hm_layout(raw, ROWS, ARTICLE_ROWS, CUSTOMERS, seed=0)


def read_csv(path):
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_ingest_reads_every_record_and_collapses_only_second_units(layout, tmp_path):
    raw, counts = layout
    report = ingest_hm(raw, tmp_path / "interim", HMConfig())
    interactions, items = read_interim(tmp_path / "interim")
    rows = read_csv(raw / TRANSACTIONS)
    distinct = {(r["customer_id"], r["article_id"], r["t_dat"]) for r in rows}
    transactions = report["files"][TRANSACTIONS]
    assert transactions["records_read"] == len(rows) == ROWS
    assert transactions["dropped"] == {
        "bad_article_id": 0,
        "bad_date": 0,
        "duplicate_same_day": ROWS - len(distinct),
        "missing_customer_id": 0,
    }
    assert 0 < ROWS - len(distinct) < ROWS // 5  # some second units, as in real purchases
    assert len(interactions) == len(distinct)
    assert len({r["user_id"] for r in interactions}) == CUSTOMERS == counts["customers_with_transactions"]
    articles = report["files"][ARTICLES]
    assert articles["records_read"] == articles["records_kept"] == len(items) == ARTICLE_ROWS
    assert articles["dropped"] == {"bad_article_id": 0, "duplicate_article_id": 0}
    assert articles["notes"] == {"without_image_file": ARTICLE_ROWS - counts["photos"], "without_text": 0}
    assert {r["item_id"] for r in interactions} <= set(items)
    assert_counts_add_up(report)


def test_layout_is_the_full_downloads(layout):
    raw, _ = layout
    rows = read_csv(raw / TRANSACTIONS)
    assert list(rows[0]) == ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
    days = [r["t_dat"] for r in rows]
    assert days == sorted(days) and "2018-09-20" <= days[0] and days[-1] <= "2020-09-22"
    assert all(len(r["customer_id"]) == 64 and int(r["customer_id"], 16) >= 0 for r in rows)
    assert all(len(r["article_id"]) == 9 and not r["article_id"].startswith("0") for r in rows)
    assert {r["sales_channel_id"] for r in rows} == {"1", "2"}
    articles = read_csv(raw / ARTICLES)
    assert tuple(articles[0]) == ARTICLES_HEADER
    ids = [a["article_id"] for a in articles]
    assert ids == sorted(set(ids)) and all(len(i) == 10 and i.startswith("0") for i in ids)
    assert {r["article_id"].zfill(10) for r in rows} <= set(ids)
    assert any("," in a["detail_desc"] for a in articles)  # quoted fields hold commas, as the real ones
    assert all(a[name].strip() for a in articles for name in HMConfig().text_columns)


def test_photos_decode_and_a_few_are_missing(tmp_path):
    counts = write_hm_layout(tmp_path, 1000, 2000, 100, seed=3)
    photos = sorted((tmp_path / "images").glob("*/*.jpg"))
    assert len(photos) == counts["photos"] and 0 < 2000 - counts["photos"] < 40  # about 0.4% missing
    assert all(photo.parent.name == photo.stem[:3] for photo in photos)
    with Image.open(photos[0]) as image:
        image.load()
        assert image.format == "JPEG"


def test_same_seed_same_bytes_other_seed_other_bytes(layout, tmp_path):
    raw, _ = layout
    write_hm_layout(tmp_path / "again", ROWS, ARTICLE_ROWS, CUSTOMERS, seed=0)
    write_hm_layout(tmp_path / "other", ROWS, ARTICLE_ROWS, CUSTOMERS, seed=1)
    for name in (TRANSACTIONS, ARTICLES):
        assert (tmp_path / "again" / name).read_bytes() == (raw / name).read_bytes()
        assert (tmp_path / "other" / name).read_bytes() != (raw / name).read_bytes()
    assert sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.jpg")) == sorted(
        p.relative_to(raw) for p in raw.rglob("*.jpg")
    )


def test_too_little_disk_is_refused_before_writing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(InputError, match="--transactions"):
        write_hm_layout(tmp_path / "out", ROWS, ARTICLE_ROWS, CUSTOMERS, seed=0)
    assert not (tmp_path / "out").exists()
    assert hm_layout.estimated_bytes(ROWS, ARTICLE_ROWS) > 10**6
