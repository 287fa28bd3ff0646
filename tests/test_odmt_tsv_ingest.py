import io
import os
import pickle
from dataclasses import replace

import lmdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.errors import InputError
from pipeline.features.images import ItemImages, load_rgb
from pipeline.formats import images
from pipeline.formats.odmt_tsv import OdmtTsvConfig, ingest_odmt_tsv
from tests.sources import assert_counts_add_up, read_interim
from tests.sources import odmt_tsv as fixture


def ingest(raw, tmp_path, config=OdmtTsvConfig()):
    report = ingest_odmt_tsv(raw, tmp_path / "interim", config)
    return report, *read_interim(tmp_path / "interim")


def stored(raw, item):
    """The LMDB entry of `item`, as prepare and extract see it."""
    return images.resolve_inside(raw, f"lmdb:{fixture.IMAGES}#{item}")


def put(raw, item, value):
    """Overwrite one entry of the fixture's LMDB."""
    environment = lmdb.open(str(raw / fixture.IMAGES), subdir=False)
    with environment.begin(write=True) as transaction:
        transaction.put(item.encode(), value)
    environment.close()


def test_fixture_matches_an_independent_reading(tmp_path):
    report, interactions, items = ingest(fixture.write_raw(tmp_path / "raw"), tmp_path)
    expected = [(user, item) for user, sequence in fixture.SEQUENCES.items() for item in sequence]
    assert [(r["user_id"], r["item_id"]) for r in interactions] == expected
    assert [r["timestamp"] for r in interactions] == list(range(len(expected)))  # position in the file
    with_image = set(fixture.stored_values())
    assert items == {
        item: {
            "item_id": item,
            "text": text,
            "image_path": f"lmdb:{fixture.IMAGES}#{item}" if item in with_image else None,
        }
        for item, text in fixture.TEXTS.items()
    }
    assert items["A05"]["text"] == "Silk scarf\tundyed, 180 cm"
    files = report["files"]
    assert files[fixture.BEHAVIOURS] == {
        "records_read": len(fixture.SEQUENCES),
        "records_kept": len(fixture.SEQUENCES),
        "dropped": {"no_items": 0},
        "notes": {"interactions": len(expected), "items_without_text_line": 1},
    }
    assert files[fixture.TEXT]["records_read"] == len(fixture.TEXTS) + 1
    assert files[fixture.TEXT]["dropped"] == {"duplicate_item_id": 0, "no_tab": 1}
    assert files[fixture.TEXT]["notes"] == {"without_image": 1, "without_text": 0}
    assert files[fixture.IMAGES]["records_read"] == len(with_image) + 2
    assert files[fixture.IMAGES]["dropped"] == {"bookkeeping_entry": 2, "no_text_line": 1}
    assert_counts_add_up(report)


def test_small_batches_stream_to_the_same_tables(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    whole = ingest(raw, tmp_path / "a")
    assert ingest(raw, tmp_path / "b", replace(OdmtTsvConfig(), batch_lines=2)) == whole


@pytest.mark.parametrize("lmdb_subdir", [False, True])
def test_prepare_keeps_the_lmdb_images_and_drops_bad_items(tmp_path, lmdb_subdir):
    raw = fixture.write_raw(tmp_path / "raw", lmdb_subdir=lmdb_subdir)
    ingest(raw, tmp_path)
    stats = prepare(tmp_path / "interim", raw, tmp_path / "processed", PrepareConfig())
    assert stats["drops"]["items_without_text_or_image"]["reasons"] == {
        "image_unreadable": 1,  # X_BROKEN
        "no_image": 1,  # X_NOIMAGE
        "not_in_items_table": 1,  # X_NOTEXT
    }
    assert stats["drops"]["min_user_interactions"]["users"] == 1  # u9
    items = pq.read_table(tmp_path / "processed" / "items.parquet").to_pylist()
    assert sorted(row["item_id"] for row in items) == fixture.ITEMS
    for row in items:
        image = load_rgb(images.resolve_inside(raw, row["image_path"]), row["item_id"])
        assert np.array_equal(np.asarray(image), fixture.pixels(row["item_id"]))


def test_forked_loader_workers_open_their_own_environment(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    assert images.image_problem(stored(raw, "A01")) is None  # the parent holds the environment open
    dataset = ItemImages([1, 2], [stored(raw, "A01"), stored(raw, "A14")], lambda image: torch.from_numpy(np.asarray(image)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")
    assert [(i, pixels.numpy().tolist()) for i, pixels in loader] == [
        (1, fixture.pixels("A01").tolist()),
        (2, fixture.pixels("A14").tolist()),
    ]


def test_a_malicious_pickle_is_refused_not_run(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    sentinel = tmp_path / "code-ran"

    class RunsCommand:
        def __reduce__(self):
            return os.system, (f"touch {sentinel}",)

    put(raw, "A01", pickle.dumps(RunsCommand()))
    assert images.image_problem(stored(raw, "A01")) == images.UNREADABLE
    with pytest.raises(InputError, match=rf"{fixture.IMAGES}, key 'A01'.*refused to load (posix|os)\.system"):
        load_rgb(stored(raw, "A01"), "A01")
    assert not sentinel.exists()
    pickle.loads(images.LmdbImage(raw / fixture.IMAGES, "A01").read())  # what a plain unpickler would do
    assert sentinel.exists()


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xd8\xff\xe0 a JPEG cut short",
        pickle.dumps(["A01", 3]),  # a pickle of builtins only, but no record
        pickle.dumps(fixture.LMDB_Image(fixture.pixels("A01")[:, :, :1], "A01")),  # one channel
        b"",
    ],
    ids=["truncated-jpeg", "not-a-record", "one-channel", "empty"],
)
def test_undecodable_values_are_unreadable(tmp_path, value):
    raw = fixture.write_raw(tmp_path / "raw")
    put(raw, "A01", value)
    assert images.image_problem(stored(raw, "A01"), decode=False) is None
    assert images.image_problem(stored(raw, "A01")) == images.UNREADABLE


def test_jpeg_values_and_missing_keys(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    jpeg = io.BytesIO()
    Image.fromarray(fixture.pixels("A01")).save(jpeg, format="JPEG")
    put(raw, "A01", jpeg.getvalue())
    assert images.image_problem(stored(raw, "A01")) is None
    assert load_rgb(stored(raw, "A01"), "A01").size == (32, 24)
    assert images.image_problem(stored(raw, "X_NOIMAGE")) == images.MISSING
    with pytest.raises(InputError, match=rf"item X_NOIMAGE: image .*{fixture.IMAGES}, key 'X_NOIMAGE' cannot be read"):
        load_rgb(stored(raw, "X_NOIMAGE"), "X_NOIMAGE")


def test_bad_lines_are_counted_drops(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    with (raw / fixture.BEHAVIOURS).open("a", encoding="utf-8") as file:
        file.write("u10\t\n\tA01 A02\nu11\n")
    with (raw / fixture.TEXT).open("a", encoding="utf-8") as file:
        file.write("A01\tA second text for A01\n\tno id\nA15\t  \n")
    report, interactions, items = ingest(raw, tmp_path)
    behaviours, text = report["files"][fixture.BEHAVIOURS], report["files"][fixture.TEXT]
    assert behaviours["dropped"] == {"missing_id": 1, "no_items": 1, "no_tab": 1}
    assert behaviours["records_kept"] == len(fixture.SEQUENCES)
    assert {r["user_id"] for r in interactions} == set(fixture.SEQUENCES)
    assert text["dropped"] == {"duplicate_item_id": 1, "missing_id": 1, "no_tab": 1}
    assert items["A01"]["text"] == fixture.TEXTS["A01"]  # the first line of a repeated id
    assert items["A15"]["text"] is None and text["notes"]["without_text"] == 1
    assert_counts_add_up(report)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (fixture.TEXT, "A01\tPaint\nA02\tCaf\xe9\n".encode("latin-1"), rf"{fixture.TEXT}, line 2: bytes that are not UTF-8"),
        (fixture.BEHAVIOURS, b"u1,A01 A02\nu2,A03\n", rf"{fixture.BEHAVIOURS}: none of its 2 lines is `id<TAB>...`"),
        (fixture.BEHAVIOURS, b"", rf"{fixture.BEHAVIOURS}: none of its 0 lines"),
        (fixture.BEHAVIOURS, b"u1\t\nu2\t \n", rf"{fixture.BEHAVIOURS}: no line holds an item"),
        (fixture.IMAGES, b"not an LMDB", rf"{fixture.IMAGES}: cannot be opened as an LMDB environment"),
    ],
)
def test_unusable_files_name_the_file_and_line(tmp_path, name, content, message):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        ingest(raw, tmp_path)


def test_missing_lmdb_names_the_path(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / fixture.IMAGES).unlink()
    with pytest.raises(InputError, match=rf"{raw}: \['{fixture.IMAGES}'\] not found"):
        ingest(raw, tmp_path)


def test_the_tag_is_found_or_asked_for(tmp_path):
    raw = fixture.write_raw(tmp_path / "raw")
    (raw / "Office_user_behaviours.tsv").write_text("u1\tO1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"several datasets \['Arts', 'Office'\]. Set ingest.odmt_tsv.tag"):
        ingest(raw, tmp_path)
    _, interactions, _ = ingest(raw, tmp_path, OdmtTsvConfig(tag="Arts"))
    assert len(interactions) == sum(map(len, fixture.SEQUENCES.values()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no \*_user_behaviours.tsv"):
        ingest(tmp_path / "empty", tmp_path)
