import csv
import json
import math
from dataclasses import replace

import pytest

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.errors import InputError
from pipeline.formats.recbole import RecBoleConfig, ingest_recbole, read_typed_header
from tests.sources import assert_counts_add_up, read_interim
from tests.sources import recbole as fixture

ROW = "1\t2\t5.0\t978300760\n"


def ingest(raw, tmp_path, config=RecBoleConfig()):
    report = ingest_recbole(raw, tmp_path / "interim", config)
    return report, *read_interim(tmp_path / "interim")


def with_inter(tmp_path, text, name=fixture.INTER):
    """The fixture's folder with its .inter file replaced by `text`."""
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.INTER).unlink()
    (raw / name).write_text(text, encoding="utf-8")
    return raw


def tab_separated(path):
    """Every line's fields, split at tabs with no quoting (an independent reading)."""
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_fixture_matches_an_independent_reading(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    report, interactions, items = ingest(raw, tmp_path)

    lines = tab_separated(raw / fixture.INTER)[1:]
    usable = []
    for user, item, _, time in (line for line in lines if len(line) == 4):
        try:
            usable.append((user, item, float(time)))
        except ValueError:
            continue
    usable.sort(key=lambda row: row[2])  # stable: ties keep the file order
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in interactions] == [
        (user, item, math.floor(time)) for user, item, time in usable
    ]
    user = {u: [(r["item_id"], r["timestamp"]) for r in interactions if r["user_id"] == u] for u in ("2", "3", "4")}
    assert [item for item, _ in user["2"][3:5]] == ["1", "13"]  # .25 before .75, the file has them the other way
    assert user["3"][4:6] == [("4", fixture.START + 3240), ("6", fixture.START + 3240)]  # a tie: file order
    assert user["4"][6] == ("11", fixture.START + 4360)  # written 9.78304360e+08

    counts = report["files"][fixture.INTER]
    assert counts["records_read"] == len(lines)
    assert counts["dropped"] == {"bad_timestamp": 1, "malformed_row": 1, "missing_item_id": 0, "missing_user_id": 0}
    assert_counts_add_up(report)
    assert counts["notes"] == {"items_without_item_line": 1}
    assert report["timestamps"].startswith("from the file, sorted by the precise time")

    first_lines = {}
    for item, *fields in tab_separated(raw / fixture.ITEM)[1:]:
        first_lines.setdefault(item, " ".join(field for field in fields if field))
    assert {item: row["text"] for item, row in items.items()} == first_lines
    assert items["7"]["text"] == "Film number 7 Drama Comedy"  # blank release_year
    counts = report["files"][fixture.ITEM]
    assert counts["records_read"] == counts["records_kept"] + 1 and counts["dropped"]["duplicate_item_id"] == 1

    assert items["13"]["image_path"] == "images/13.jpeg" and items["14"]["image_path"] == "images/14.png"
    assert items[fixture.NO_PICTURE]["image_path"] is None
    assert all((raw / row["image_path"]).is_file() for row in items.values() if row["image_path"])
    assert report["images"] == {"folder": "images", "items_without_image_file": 1}


def test_fixture_prepares_to_eight_users_over_fourteen_items(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    ingest_recbole(raw, tmp_path / "interim", RecBoleConfig())
    stats = prepare(tmp_path / "interim", raw, tmp_path / "processed", PrepareConfig())
    assert (stats["users"], stats["items"], stats["interactions"]) == (8, 14, 56)
    assert stats["drops"]["items_without_text_or_image"]["reasons"] == {"no_image": 1, "not_in_items_table": 1}


def test_typed_header_gives_each_field_its_type(tmp_path):
    path = tmp_path / "x.item"
    path.write_text("item_id:token\ttitle:token_seq\tprice:float\tvector:float_seq\n1\ta b\t1.5\t1 2\n", encoding="utf-8")
    assert read_typed_header(path) == {"item_id": "token", "title": "token_seq", "price": "float", "vector": "float_seq"}


def test_quote_characters_are_ordinary_characters(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    with (raw / fixture.ITEM).open("a", encoding="utf-8") as file:
        file.write('\n20\t"Unbalanced title\t2001\tDrama\n21\tNext film\t2002\tDrama\n')
    report, _, items = ingest(raw, tmp_path)
    assert items["3"]["text"] == '12" Single 1983 Drama Comedy'
    assert items["4"]["text"] == '"Great Performances" Cats 1984 Animation Children\'s'
    assert items["20"]["text"] == '"Unbalanced title 2001 Drama'
    assert items["21"]["text"] == "Next film 2002 Drama"  # not swallowed by the quote above
    assert report["files"][fixture.ITEM]["dropped"]["malformed_row"] == 1  # the blank line


def test_wrong_number_of_fields_is_a_counted_drop(tmp_path):
    raw = with_inter(tmp_path, fixture.INTER_HEADER + ROW + "1\t3\t978300761\n" + "1\t4\t5.0\t978300762\textra\n" + ROW)
    report, interactions, _ = ingest(raw, tmp_path)
    assert [r["item_id"] for r in interactions] == ["2", "2"]
    counts = report["files"][fixture.INTER]
    assert (counts["records_read"], counts["records_kept"], counts["dropped"]["malformed_row"]) == (4, 2, 2)


def test_whole_seconds_keep_the_file_order(tmp_path):
    raw = with_inter(tmp_path, fixture.INTER_HEADER + "1\t5\t1.0\t20\n1\t6\t1.0\t10\n1\t7\t1.0\t20\n")
    report, interactions, _ = ingest(raw, tmp_path)
    assert [(r["item_id"], r["timestamp"]) for r in interactions] == [("5", 20), ("6", 10), ("7", 20)]
    assert report["timestamps"] == "from the file, in file order"


def test_without_a_time_field_the_file_order_is_the_time(tmp_path):
    raw = with_inter(tmp_path, "user_id:token\titem_id:token\n1\t5\n2\t6\n1\t7\n")
    report, interactions, _ = ingest(raw, tmp_path)
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in interactions] == [("1", "5", 0), ("2", "6", 1), ("1", "7", 2)]
    assert report["timestamps"].startswith("synthetic")


def test_configured_field_names_and_text_fields(tmp_path):
    raw = with_inter(tmp_path, "uid:token\titem_id:token\tts:float\nu1\t1\t5\n", name="other.inter")
    (raw / fixture.ITEM).rename(raw / "other.item")
    config = RecBoleConfig(user_field="uid", time_field="ts", text_fields=("class", "movie_title"), text_separator=" | ")
    _, interactions, items = ingest(raw, tmp_path, config)
    assert interactions == [{"user_id": "u1", "item_id": "1", "timestamp": 5}]
    assert items["1"]["text"] == "Drama Comedy | Film number 1"


def test_without_an_item_file_every_text_is_null(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.ITEM).unlink()
    report, _, items = ingest(raw, tmp_path)
    assert all(row["text"] is None for row in items.values())
    assert items["1"]["image_path"] == "images/1.jpg" and len(items) == 16
    assert fixture.ITEM in report["item_file"] and list(report["files"]) == [fixture.INTER]
    json.dumps(report)


@pytest.mark.parametrize(
    ("inter", "message"),
    [
        ("user_id:token\titem_id:token\trating:double\n" + ROW, r"ml-mini.inter, line 1: field 'rating' has the unknown type 'double'"),
        ("user_id:token\titem_id\n1\t2\n", r"ml-mini.inter, line 1: field 'item_id' has no type"),
        (
            "user_id:token,item_id:token,rating:float,timestamp:float\n1,2,5.0,978300760\n",
            r"ml-mini.inter, line 1: .* not separated by tabs",
        ),
        ("uid:token\titem_id:token\trating:float\ttimestamp:float\n" + ROW, r"ml-mini.inter, line 1: no field \['user_id'\]"),
        (fixture.INTER_HEADER, "header but no records"),
        ("", "empty file"),
        (fixture.INTER_HEADER + "1\t\t5.0\t1\n", r"none of its 1 lines is a usable interaction"),
        (fixture.INTER_HEADER + ROW + "2\tcaf\xe9\t5.0\t1\n", None),
    ],
)
def test_unusable_files_name_the_file_and_line(tmp_path, inter, message):
    raw = with_inter(tmp_path, inter)
    if message is None:  # latin-1 bytes on line 3
        (raw / fixture.INTER).write_bytes(inter.encode("latin-1"))
        message = r"ml-mini.inter, line 3: bytes that are not UTF-8"
    with pytest.raises(InputError, match=message):
        ingest(raw, tmp_path)


def test_unknown_type_in_the_item_file(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.ITEM).write_text("item_id:token\ttitle:text\n1\tA film\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"ml-mini.item, line 1: field 'title' has the unknown type 'text'"):
        ingest(raw, tmp_path)


def test_dataset_name_is_found_or_asked_for(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / "other.inter").write_text(fixture.INTER_HEADER + ROW, encoding="utf-8")
    with pytest.raises(InputError, match=r"several datasets \['ml-mini', 'other'\]. Set ingest.recbole.name"):
        ingest(raw, tmp_path)
    report, _, _ = ingest(raw, tmp_path, replace(RecBoleConfig(), name="other"))
    assert report["dataset"] == "other" and report["item_file"].startswith("other.item not found")
    for path in raw.glob("*.inter"):
        path.unlink()
    with pytest.raises(InputError, match=r"no \*.inter file"):
        ingest(raw, tmp_path)


def test_an_item_file_of_only_malformed_lines_is_counted_not_a_crash(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.ITEM).write_text("item_id:token\ttitle:token_seq\n1\n2\n", encoding="utf-8")
    report, interactions, items = ingest(raw, tmp_path)
    assert items == {} and interactions  # prepare then drops every item, counted there
    assert report["files"][fixture.ITEM]["dropped"]["malformed_row"] == 2
