import csv
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.errors import InputError
from pipeline.formats.microlens import MicroLensConfig, ingest_microlens
from tests.sources import assert_counts_add_up, read_interim
from tests.sources import microlens as fixture


def ingest(raw, tmp_path, config=MicroLensConfig()):
    report = ingest_microlens(raw, tmp_path / "interim", config)
    return report, *read_interim(tmp_path / "interim")


def csv_views(path):
    """(user, item, seconds) of a pairs CSV, stably sorted by milliseconds: the reading the reader must match."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = [(r["user"], r["item"], int(r["timestamp"])) for r in csv.DictReader(file)]
    return [(user, item, ms // 1000) for user, item, ms in sorted(rows, key=lambda row: row[2])]


def rows(interactions):
    return [(r["user_id"], r["item_id"], r["timestamp"]) for r in interactions]


def sequences(interactions):
    by_user = {}
    for r in interactions:
        by_user.setdefault(r["user_id"], []).append(r["item_id"])
    return by_user


def append(path, text):
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def test_fixture_matches_an_independent_reading(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    report, interactions, items = ingest(raw, tmp_path)
    expected = csv_views(raw / fixture.PAIRS_CSV)
    assert rows(interactions) == expected
    assert sequences(interactions) == fixture.SEQUENCES  # the file's rows were not in time order
    with (raw / fixture.TITLES).open(encoding="utf-8", newline="") as file:
        titles = {r["item"]: r["title"] for r in csv.DictReader(file)}
    assert items == {
        item: {
            "item_id": item,
            "text": title,
            "image_path": f"{fixture.COVERS}/{item}.jpg" if (raw / fixture.COVERS / f"{item}.jpg").is_file() else None,
        }
        for item, title in titles.items()
    }
    assert items["3"]["text"] == "上海夜景, 延时摄影"  # Chinese, with a quoted comma
    assert items[fixture.NO_COVER]["image_path"] is None
    assert fixture.NO_TITLE not in items
    assert report["files"] == {
        fixture.PAIRS_CSV: {
            "records_read": len(expected),
            "records_kept": len(expected),
            "dropped": {"bad_timestamp": 0, "missing_item": 0, "missing_user": 0},
            "notes": {"items_without_title_line": 1},
        },
        fixture.TITLES: {
            "records_read": len(titles),
            "records_kept": len(titles),
            "dropped": {"duplicate_item_id": 0},
            "notes": {"without_cover_file": 1, "without_text": 0},
        },
    }
    assert report["titles_header"] is True


def test_views_within_one_second_keep_their_millisecond_order(tmp_path):
    _, interactions, _ = ingest(fixture.write_raw(tmp_path / "raw"), tmp_path)
    user = fixture.SAME_SECOND_USER
    mine = [r for r in interactions if r["user_id"] == user]
    assert [r["item_id"] for r in mine] == fixture.SEQUENCES[user]
    assert mine[2]["timestamp"] == mine[3]["timestamp"]


def test_equal_milliseconds_keep_file_order(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.PAIRS_CSV).write_text("user,item,timestamp\n1,5,2000\n1,3,1000\n1,9,1000\n2,3,999\n", encoding="utf-8")
    _, interactions, _ = ingest(raw, tmp_path)
    assert rows(interactions) == [("2", "3", 0), ("1", "3", 1), ("1", "9", 1), ("1", "5", 2)]


def test_small_blocks_sort_views_across_blocks(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    rng = np.random.default_rng(0)
    lines = [f"{rng.integers(1, 50)},{rng.integers(1, 15)},{rng.integers(10**12, 10**12 + 10**6)}\n" for _ in range(6000)]
    (raw / fixture.PAIRS_CSV).write_text("user,item,timestamp\n" + "".join(lines), encoding="utf-8")
    assert (raw / fixture.PAIRS_CSV).stat().st_size > 65536
    _, streamed, _ = ingest(raw, tmp_path / "a", replace(MicroLensConfig(), block_size_bytes=65536))
    assert rows(streamed) == csv_views(raw / fixture.PAIRS_CSV)
    _, whole, _ = ingest(raw, tmp_path / "b")
    assert whole == streamed


def test_headerless_titles_of_the_100k_release(tmp_path):
    _, _, items_50k = ingest(fixture.write_raw(tmp_path / "50k" / "raw"), tmp_path / "50k")
    raw = fixture.write_raw(tmp_path / "100k" / "raw", release="100k")
    report, _, items = ingest(raw, tmp_path / "100k")
    assert report["titles_header"] is False
    assert {item: row["text"] for item, row in items.items()} == {item: row["text"] for item, row in items_50k.items()}
    assert items["1"]["image_path"] == "MicroLens-100k_covers/1.jpg"
    assert report["files"][fixture.TITLES_100K]["records_read"] == len(fixture.TITLES_BY_ITEM)
    with pytest.raises(InputError, match=rf"{fixture.TITLES_100K}, line 1: missing column\(s\) \['item', 'title'\]"):
        ingest(raw, tmp_path / "forced", replace(MicroLensConfig(), titles_header=True))


def test_forcing_no_header_reads_line_one_as_an_item(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    report, _, items = ingest(raw, tmp_path, replace(MicroLensConfig(), titles_header=False))
    assert items["item"]["text"] == "title"
    assert report["files"][fixture.TITLES]["records_read"] == len(fixture.TITLES_BY_ITEM) + 1


def test_pairs_tsv_keeps_each_users_order_with_positions_as_times(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    _, from_csv, _ = ingest(raw, tmp_path / "csv")
    (raw / fixture.PAIRS_CSV).unlink()
    report, interactions, _ = ingest(raw, tmp_path / "tsv")  # detected: the only pairs file left
    expected = [(user, item) for user, sequence in fixture.SEQUENCES.items() for item in sequence]
    assert [(r["user_id"], r["item_id"]) for r in interactions] == expected
    assert [r["timestamp"] for r in interactions] == list(range(len(expected)))
    assert sequences(interactions) == sequences(from_csv)
    assert report["timestamps"].startswith("synthetic")
    assert report["files"][fixture.PAIRS_TSV]["records_read"] == len(fixture.SEQUENCES)
    assert_counts_add_up(report)


def test_tsv_lines_without_items_are_counted_drops(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    append(raw / fixture.PAIRS_TSV, "9\t \n10\n")
    report, interactions, _ = ingest(raw, tmp_path, replace(MicroLensConfig(), pairs=fixture.PAIRS_TSV))
    assert {r["user_id"] for r in interactions} == set(fixture.SEQUENCES)
    counts = report["files"][fixture.PAIRS_TSV]
    assert counts["dropped"] == {"no_items": 1, "no_tab": 1}
    assert counts["records_read"] == len(fixture.SEQUENCES) + 2
    assert_counts_add_up(report)


def test_bad_pairs_rows_are_counted_drops(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    append(raw / fixture.PAIRS_CSV, "1,3,yesterday\n1,3,1583020800000.5\n,3,1583020800000\n1,,1583020800000\n1,3\n")
    report, interactions, _ = ingest(raw, tmp_path)
    counts = report["files"][fixture.PAIRS_CSV]
    assert counts["dropped"] == {"bad_timestamp": 2, "malformed_row": 1, "missing_item": 1, "missing_user": 1}
    assert len(interactions) == counts["records_kept"] == counts["records_read"] - 5
    assert_counts_add_up(report)


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_pairs_with_another_delimiter_name_the_header_found(tmp_path, delimiter):
    raw = fixture.write_raw(tmp_path / "raw")
    text = (raw / fixture.PAIRS_CSV).read_text(encoding="utf-8").replace(",", delimiter)
    (raw / fixture.PAIRS_CSV).write_text(text, encoding="utf-8")
    found = re.escape(repr([delimiter.join(["user", "item", "timestamp"])]))
    with pytest.raises(InputError, match=rf"{fixture.PAIRS_CSV}, line 1: missing column\(s\) .*the header has {found}"):
        ingest(raw, tmp_path)


def test_pairs_without_a_timestamp_column(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.PAIRS_CSV).write_text("user,item\n1,3\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"{fixture.PAIRS_CSV}, line 1: missing column\(s\) \['timestamp'\]"):
        ingest(raw, tmp_path)


def test_malformed_and_repeated_title_lines_are_counted_drops(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    append(raw / fixture.TITLES, "5,unquoted, comma\n1,A second title\n,no item\n\n")
    report, _, items = ingest(raw, tmp_path)
    assert items["1"]["text"] == fixture.TITLES_BY_ITEM["1"]
    counts = report["files"][fixture.TITLES]
    assert counts["dropped"] == {"duplicate_item_id": 1, "malformed_row": 1, "missing_item_id": 1}
    assert counts["records_read"] == len(fixture.TITLES_BY_ITEM) + 3  # the blank line is no record
    assert_counts_add_up(report)


@pytest.mark.parametrize(
    ("titles", "header", "message"),
    [
        ("item,name\n1,Cat\n", None, r", line 1: missing column\(s\) \['title'\]; the header has \['item', 'name'\]"),
        ("item\ttitle\n1\tCat\n", None, r", line 1: missing column\(s\) .*the header has \['item\\ttitle'\]"),
        ("1\tCat\n2\tDog\n", False, r": none of its 2 records is `item,title`"),
        ("item,title\n1,Cat\n2,Caf\xe9\n", None, r", line 3: bytes that are not UTF-8"),
    ],
)
def test_unusable_titles_files_name_the_file_and_line(tmp_path, titles, header, message):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.TITLES).write_bytes(titles.encode("latin-1"))
    with pytest.raises(InputError, match=rf"{fixture.TITLES}{message}"):
        ingest(raw, tmp_path, replace(MicroLensConfig(), titles_header=header))


def test_detection_lists_what_it_found(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / "MicroLens-100k_pairs.csv").write_text("user,item,timestamp\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"several \*_pairs.csv: \['MicroLens-100k_pairs.csv', 'MicroLens-50k_pairs.csv'\]"):
        ingest(raw, tmp_path)
    for name in ("MicroLens-100k_pairs.csv", fixture.PAIRS_CSV, fixture.PAIRS_TSV):
        (raw / name).unlink()
    with pytest.raises(InputError, match=r"no \*_pairs.csv or \*_pairs.tsv found.*ingest.microlens.pairs"):
        ingest(raw, tmp_path)
    other = fixture.write_raw(tmp_path / "other" / "raw")
    shutil.rmtree(other / fixture.COVERS)
    with pytest.raises(InputError, match=r"no \*_covers found.*ingest.microlens.covers"):
        ingest(other, tmp_path)


def test_configured_names_of_covers_and_files(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.COVERS).rename(raw / "covers")
    for cover in (raw / "covers").iterdir():
        cover.rename(raw / "covers" / f"cover_{cover.name}")
    config = replace(MicroLensConfig(), covers="covers", cover_name="cover_{item}.jpg", pairs=fixture.PAIRS_CSV)
    _, _, items = ingest(raw, tmp_path, config)
    assert items["1"]["image_path"] == "covers/cover_1.jpg"
    with pytest.raises(InputError, match=r"missing_pairs.tsv: file not found"):
        ingest(raw, tmp_path, replace(config, pairs="missing_pairs.tsv"))


def test_config_rejects_unusable_values():
    with pytest.raises(ValueError, match="cover_name"):
        MicroLensConfig(cover_name="cover.jpg")
    with pytest.raises(ValueError, match="pairs"):
        MicroLensConfig(pairs="MicroLens-50k_pairs.txt")


def test_prepare_keeps_every_user_and_drops_the_items_without_title_or_cover(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    ingest(raw, tmp_path)
    stats = prepare(tmp_path / "interim", raw, tmp_path / "processed", PrepareConfig())
    assert (stats["users"], stats["items"]) == (len(fixture.SEQUENCES), len(fixture.ITEMS))
    assert stats["drops"]["items_without_text_or_image"]["items"] == 2
