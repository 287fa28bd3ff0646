import ast
import gzip
import json
import logging
from dataclasses import replace

import pytest

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.errors import InputError
from pipeline.formats.amazon import AmazonConfig, ingest_amazon
from tests.sources import amazon as fixture
from tests.sources import assert_counts_add_up, read_interim

REVIEW = {"reviewerID": "AZZZ", "asin": fixture.ASINS[0], "unixReviewTime": fixture.START}


def ingest(raw, tmp_path, config=AmazonConfig()):
    report = ingest_amazon(raw, tmp_path / "interim", config)
    return report, *read_interim(tmp_path / "interim")


def with_reviews(tmp_path, lines):
    """The fixture's folder with its gzipped reviews replaced by the plain text `lines`."""
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.REVIEWS).unlink()
    (raw / fixture.REVIEWS.removesuffix(".gz")).write_text("".join(lines), encoding="utf-8")
    return raw


def json_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def as_rows(interactions):
    return [(r["user_id"], r["item_id"], r["timestamp"]) for r in interactions]


def test_fixture_matches_an_independent_reading(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    report, interactions, items = ingest(raw, tmp_path)

    reviews = json_lines(raw / fixture.REVIEWS)
    rows = [(r["reviewerID"], r["asin"], r["unixReviewTime"]) for r in reviews]
    assert as_rows(interactions) == list(dict.fromkeys(rows))  # file order, the repeated line once
    counts = report["files"][fixture.REVIEWS]
    assert counts["records_read"] == len(reviews)
    assert counts["dropped"] == {"duplicate_review": 1}
    assert counts["notes"] == {"items_without_meta_line": 1}  # NO_META
    assert_counts_add_up(report)

    products = json_lines(raw / fixture.META)
    assert set(items) == {p["asin"] for p in products}
    plain = [p for p in products if p["asin"] not in (fixture.ASINS[0], fixture.ASINS[3])]
    for p in plain:
        assert items[p["asin"]]["text"] == " ".join([p["title"], p["brand"], *p["category"], *p["description"]])
    counts = report["files"][fixture.META]
    assert counts["records_read"] == len(products) and counts["dropped"] == {"duplicate_asin": 1}
    assert counts["notes"] == {"without_image_file": 1, "without_text": 0}

    assert {asin: items[asin]["image_path"] for asin in fixture.ASINS} == {a: f"images/{a}.jpg" for a in fixture.ASINS}
    assert all((raw / items[asin]["image_path"]).is_file() for asin in fixture.ASINS)
    assert items[fixture.NO_PICTURE]["image_path"] is None


def test_html_is_decoded_and_missing_optional_fields_skipped(tmp_path):
    _, _, items = ingest(fixture.write_raw(tmp_path / "raw"), tmp_path)
    assert items[fixture.ASINS[0]]["text"] == (
        "Acrylic Paint Set & Brushes Gutermann Arts, Crafts & Sewing Painting, Drawing & Art Supplies Painting "
        '12 bright colours Non-toxic "artist" grade Made in USA'
    )
    assert items[fixture.ASINS[3]]["text"] == "Sewing Thread No. 3 Arts, Crafts & Sewing Sewing"  # no brand, no description


def test_text_fields_order_and_separator_are_configurable(tmp_path):
    config = replace(AmazonConfig(), text_fields=("brand", "title"), text_separator=" | ")
    report, _, items = ingest(fixture.write_raw(tmp_path / "raw"), tmp_path, config)
    assert items[fixture.ASINS[1]]["text"] == "Gutermann | Sewing Thread No. 1"
    report, _, items = ingest(tmp_path / "raw", tmp_path / "b", replace(config, text_fields=("brand",)))
    assert items[fixture.ASINS[3]]["text"] is None
    assert report["files"][fixture.META]["notes"]["without_text"] == 1


def test_repeated_reviews_can_be_kept_and_ties_keep_file_order(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    _, interactions, _ = ingest(raw, tmp_path, replace(AmazonConfig(), collapse_duplicates=False))
    reviews = json_lines(raw / fixture.REVIEWS)
    assert as_rows(interactions) == [(r["reviewerID"], r["asin"], r["unixReviewTime"]) for r in reviews]
    tie = fixture.START + 46 * fixture.DAY  # reviewer 4 reviewed ASINS[2] and ASINS[4] on that day
    assert [item for user, item, time in as_rows(interactions) if time == tie] == [fixture.ASINS[2], fixture.ASINS[4]]


def test_small_batches_give_the_same_tables(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    whole = ingest(raw, tmp_path / "a")
    assert ingest(raw, tmp_path / "b", replace(AmazonConfig(), batch_rows=4)) == whole


def test_plain_reviews_and_gzipped_meta_read_the_same(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    _, interactions, items = ingest(raw, tmp_path / "a")
    reviews = raw / fixture.REVIEWS
    reviews.with_suffix("").write_bytes(gzip.decompress(reviews.read_bytes()))
    reviews.unlink()
    meta = raw / fixture.META
    (raw / f"{fixture.META}.gz").write_bytes(gzip.compress(meta.read_bytes()))
    meta.unlink()
    assert ingest(raw, tmp_path / "b")[1:] == (interactions, items)
    (raw / fixture.META).write_bytes((raw / f"{fixture.META}.gz").read_bytes())  # gzipped, named .json
    (raw / f"{fixture.META}.gz").unlink()
    assert ingest(raw, tmp_path / "c")[1:] == (interactions, items)


def test_pictures_report_what_to_download(tmp_path, caplog):
    report, _, _ = ingest(fixture.write_raw(tmp_path / "raw"), tmp_path)
    assert report["images"] == {
        "folder": "images",
        "name": "{asin}.jpg",
        "with_image_file": len(fixture.ASINS),
        "url_fields": {"imageURLHighRes": len(fixture.ASINS) + 1},
        "with_url_but_no_image_file": 1,
    }
    assert "images/{asin}.jpg: no file for 1 products with a picture URL (in ['imageURLHighRes'])" in caplog.text


def test_pictures_in_a_configured_folder_and_name(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    for asin in fixture.ASINS:
        (raw / "photos" / asin).mkdir(parents=True)
        (raw / "images" / f"{asin}.jpg").rename(raw / "photos" / asin / "main.jpg")
    _, _, items = ingest(raw, tmp_path, replace(AmazonConfig(), images="photos", image_name="{asin}/main.jpg"))
    assert items[fixture.ASINS[0]]["image_path"] == f"photos/{fixture.ASINS[0]}/main.jpg"
    (raw / "images").rmdir()
    _, _, items = ingest(raw, tmp_path / "b")
    assert all(item["image_path"] is None for item in items.values())


def test_the_2014_edition_reads_python_literals(tmp_path):
    raw = tmp_path / "raw"
    fixture.write_raw_2014(raw)
    report, interactions, items = ingest(raw, tmp_path)
    with gzip.open(raw / fixture.REVIEWS_2014, "rt", encoding="utf-8") as file:
        reviews = [ast.literal_eval(line) for line in file]
    assert as_rows(interactions) == [(r["reviewerID"], r["asin"], r["unixReviewTime"]) for r in reviews]
    assert items[fixture.ASINS_2014[1]] == {
        "item_id": fixture.ASINS_2014[1],
        "text": "Stapler 1 Swingline Office Products Office & School Supplies Staplers Desk & office item 1.",
        "image_path": f"images/{fixture.ASINS_2014[1]}.jpg",
    }
    assert report["images"]["url_fields"] == {"imUrl": len(fixture.ASINS_2014)}
    assert_counts_add_up(report)


def test_fixture_survives_prepare(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    ingest(raw, tmp_path)
    stats = prepare(tmp_path / "interim", raw, tmp_path / "processed", PrepareConfig())
    assert stats["users"] == len(fixture.USERS) and stats["items"] == len(fixture.ASINS)


def test_a_line_cut_short_is_a_counted_drop_named_in_a_warning(tmp_path, caplog):
    lines = [json.dumps(REVIEW) + "\n", json.dumps(REVIEW)[:40] + "\n", json.dumps(REVIEW | {"reviewerID": "AYYY"})]
    raw = with_reviews(tmp_path, lines)
    with caplog.at_level(logging.WARNING):
        report, interactions, _ = ingest(raw, tmp_path)
    assert as_rows(interactions) == [("AZZZ", fixture.ASINS[0], fixture.START), ("AYYY", fixture.ASINS[0], fixture.START)]
    assert report["files"][fixture.REVIEWS.removesuffix(".gz")]["dropped"] == {"duplicate_review": 0, "malformed_line": 1}
    assert f"{fixture.REVIEWS.removesuffix('.gz')}, line 2: skipped (malformed_line)" in caplog.text


def test_reviews_missing_a_field_are_dropped_per_reason(tmp_path):
    broken = [REVIEW | {"reviewerID": " "}, {k: v for k, v in REVIEW.items() if k != "asin"}, REVIEW | {"asin": 42}]
    broken += [{k: v for k, v in REVIEW.items() if k != "unixReviewTime"}, REVIEW | {"unixReviewTime": "1388534400"}]
    raw = with_reviews(tmp_path, [json.dumps(record) + "\n\n" for record in [REVIEW, *broken]])  # blank lines are no records
    report, interactions, _ = ingest(raw, tmp_path)
    assert len(interactions) == 1
    counts = report["files"][fixture.REVIEWS.removesuffix(".gz")]
    assert counts["records_read"] == 6
    assert counts["dropped"] == {
        "bad_unixReviewTime": 1,
        "duplicate_review": 0,
        "missing_asin": 2,
        "missing_reviewerID": 1,
        "missing_unixReviewTime": 1,
    }


def test_meta_lines_without_asin_are_dropped(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    with (raw / fixture.META).open("a", encoding="utf-8") as file:
        file.write(json.dumps({"title": "No asin"}) + "\n")
    report, _, _ = ingest(raw, tmp_path)
    assert report["files"][fixture.META]["dropped"] == {"duplicate_asin": 1, "missing_asin": 1}
    assert_counts_add_up(report)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["reviewerID,asin,unixReviewTime\n", "AZZZ,B0001ARTS1,1388534400\n"], r"\.json, line 1: not a JSON .*'reviewerID,asin"),
        (["\n", "[1, 2]\n"], r"\.json, line 2: not a JSON object"),
        (["\n"], r"\.json: empty"),
        ([json.dumps(REVIEW | {"asin": ""}) + "\n"], r"none of its 1 lines is usable: \{'missing_asin': 1\}"),
    ],
)
def test_unusable_reviews_files_name_the_file_and_line(tmp_path, lines, message):
    with pytest.raises(InputError, match=message):
        ingest(with_reviews(tmp_path, lines), tmp_path)


def test_a_gzip_file_cut_short_is_an_error(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    path = raw / fixture.REVIEWS
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputError, match=rf"{fixture.REVIEWS}: the compressed data breaks off after line \d+ .*download it"):
        ingest(raw, tmp_path)


def test_files_are_found_or_named_in_the_error(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / f"{fixture.CATEGORY}_5.json").write_text(json.dumps(REVIEW) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"several reviews files \['Arts_Crafts_and_Sewing.json.gz', 'Arts_Crafts_and_Sewing_5"):
        ingest(raw, tmp_path)
    _, interactions, _ = ingest(raw, tmp_path, replace(AmazonConfig(), reviews=f"{fixture.CATEGORY}_5.json"))
    assert len(interactions) == 1
    (raw / "meta_Office_Products.json").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"several meta files \['meta_Arts_Crafts_and_Sewing.json', 'meta_Office_Pro"):
        ingest(raw, tmp_path)
    with pytest.raises(InputError, match=r"no reviews file \(looked for \['Office_Products.json', .*\) for meta_Office"):
        ingest(raw, tmp_path, replace(AmazonConfig(), meta="meta_Office_Products.json"))
    with pytest.raises(InputError, match=r"meta_Books.json: not found. Set ingest.amazon.meta"):
        ingest(raw, tmp_path, replace(AmazonConfig(), meta="meta_Books.json"))


@pytest.mark.parametrize(
    "changes",
    [{"text_fields": ()}, {"image_name": "photo.jpg"}, {"image_name": "{sku}.jpg"}, {"batch_rows": 0}],
)
def test_config_refuses_values_that_cannot_work(changes):
    with pytest.raises(ValueError):
        AmazonConfig(**changes)
