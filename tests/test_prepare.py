import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import load_params
from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.dataset.processed import ITEMS, SEQUENCES, STATS_FILE, leave_one_out, read_processed, write_processed
from pipeline.errors import InputError
from pipeline.formats.hm import HMConfig, ingest_hm
from pipeline.formats.interim import write_interim
from tests.conftest import HM_MINI, REPO, jpeg_bytes


def make_interim(tmp_path, sequences, items):
    """sequences: user -> item ids oldest first (one day apart); items: id -> (text, image_path)."""
    rows = [(user, item, 86400 * t) for user, seq in sequences.items() for t, item in enumerate(seq)]
    interactions = pa.table({k: list(v) for k, v in zip(("user_id", "item_id", "timestamp"), zip(*rows))})
    table = pa.table({"item_id": list(items), "text": [t for t, _ in items.values()], "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {"source": "test"})
    return tmp_path / "interim"


def good_items(raw, ids):
    (raw / "img").mkdir(parents=True, exist_ok=True)
    for item in ids:
        (raw / "img" / f"{item}.jpg").write_bytes(jpeg_bytes())
    return {item: (f"text of {item}", f"img/{item}.jpg") for item in ids}


def run(tmp_path, sequences, items, config=PrepareConfig()):
    stats = prepare(make_interim(tmp_path, sequences, items), tmp_path / "raw", tmp_path / "processed", config)
    out = tmp_path / "processed"
    items_table = pq.read_table(out / "items.parquet").to_pylist()
    sequences_table = pq.read_table(out / "sequences.parquet").to_pylist()
    assert json.loads((out / "stats.json").read_text()) == stats
    id_of = {row["item_idx"]: row["item_id"] for row in items_table}
    as_ids = {row["user_id"]: [id_of[i] for i in row["items"]] for row in sequences_table}
    return stats, items_table, sequences_table, as_ids


def test_item_filter_counts_every_reason(tmp_path):
    raw = tmp_path / "raw"
    items = good_items(raw, [f"g{i}" for i in range(5)])
    (raw / "img" / "empty.jpg").write_bytes(b"")
    (raw / "img" / "truncated.jpg").write_bytes(jpeg_bytes((64, 64))[:300])
    (raw / "img" / "text.jpg").write_text("not an image")
    (tmp_path / "outside.jpg").write_bytes(jpeg_bytes())
    items |= {
        "no_text": ("  ", "img/g0.jpg"),
        "no_image": ("t", None),
        "missing": ("t", "img/missing.jpg"),
        "empty": ("t", "img/empty.jpg"),
        "truncated": ("t", "img/truncated.jpg"),
        "not_image": ("t", "img/text.jpg"),
        "escapes": ("t", "../outside.jpg"),
    }
    bad = ["no_text", "no_image", "missing", "empty", "truncated", "not_image", "escapes", "unknown"]
    sequences = {"u1": ["g0", "g1", *bad, "g2", "g3", "g4"], "u2": ["g4", "g3", "g2", "g1", "g0", "missing"]}
    stats, _, _, as_ids = run(tmp_path, sequences, items)
    assert stats["drops"]["items_without_text_or_image"] == {
        "items": 8,
        "interactions": 9,
        "reasons": {
            "image_file_missing": 1,
            "image_outside_raw_folder": 1,
            "image_unreadable": 3,
            "no_image": 1,
            "no_text": 1,
            "not_in_items_table": 1,
        },
    }
    assert as_ids == {"u1": ["g0", "g1", "g2", "g3", "g4"], "u2": ["g4", "g3", "g2", "g1", "g0"]}


def test_exists_check_skips_decoding(tmp_path):
    raw = tmp_path / "raw"
    items = good_items(raw, ["a", "b", "c", "d"])
    (raw / "img" / "e.jpg").write_bytes(jpeg_bytes((64, 64))[:300])
    items["e"] = ("t", "img/e.jpg")
    stats, *_ = run(tmp_path, {"u": ["a", "b", "c", "d", "e"]}, items, PrepareConfig(image_check="exists"))
    assert stats["items"] == 5


def test_user_filter_truncation_and_reindexing(tmp_path):
    ids = [f"i{n:02d}" for n in range(20)]
    items = good_items(tmp_path / "raw", ids)
    sequences = {"long": ids, "short": ids[:4], "five": ids[5:10][::-1]}
    stats, items_table, sequences_table, as_ids = run(tmp_path, sequences, items)
    assert as_ids == {"five": ids[5:10][::-1], "long": ids[5:]}
    assert stats["drops"]["min_user_interactions"] == {"users": 1, "interactions": 4}
    assert stats["drops"]["max_sequence_length"] == {"interactions": 5}
    assert stats["drops"]["items_no_longer_occurring"] == {"items": 5}
    # items 1..N in id order, users 0..U-1 in id order
    assert [row["item_idx"] for row in items_table] == list(range(1, 16))
    assert [row["item_id"] for row in items_table] == ids[5:]
    assert [(row["user_idx"], row["user_id"]) for row in sequences_table] == [(0, "five"), (1, "long")]
    assert {k: stats[k] for k in ("users", "items", "interactions", "average_length")} == {
        "users": 2,
        "items": 15,
        "interactions": 20,
        "average_length": 10.0,
    }
    assert stats["density"] == round(20 / (2 * 15), 6)


def test_train_counts_cover_only_the_training_part(tmp_path):
    items = good_items(tmp_path / "raw", "abcdef")
    sequences = {"u1": ["a", "b", "a", "c", "d"], "u2": ["b", "c", "e", "a", "f"]}
    _, items_table, _, _ = run(tmp_path, sequences, items)
    expected = Counter(["a", "b", "a", "b", "c", "e"])  # seq[:-2] of each user
    assert {row["item_id"]: row["train_count"] for row in items_table} == {k: expected[k] for k in "abcdef"}


def test_equal_timestamps_keep_source_order(tmp_path):
    items = good_items(tmp_path / "raw", ["e", "d", "c", "b", "a"])
    interactions = pa.table({"user_id": ["u"] * 5, "item_id": ["e", "d", "c", "b", "a"], "timestamp": [5, 1, 1, 1, 0]})
    table = pa.table({"item_id": list(items), "text": ["t"] * 5, "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {})
    prepare(tmp_path / "interim", tmp_path / "raw", tmp_path / "processed", PrepareConfig())
    items_table = pq.read_table(tmp_path / "processed" / "items.parquet").to_pylist()
    id_of = {row["item_idx"]: row["item_id"] for row in items_table}
    sequence = pq.read_table(tmp_path / "processed" / "sequences.parquet")["items"][0].as_py()
    assert [id_of[i] for i in sequence] == ["a", "d", "c", "b", "e"]


def prepare_rows(tmp_path, rows, config=PrepareConfig(min_user_interactions=3)):
    """prepare on interim interactions in the order of `rows` (user, item, timestamp); the processed folder."""
    interactions = pa.table({k: list(v) for k, v in zip(("user_id", "item_id", "timestamp"), zip(*rows))})
    items = good_items(tmp_path / "raw", sorted({item for _, item, _ in rows}))
    table = pa.table({"item_id": list(items), "text": [t for t, _ in items.values()], "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {})
    prepare(tmp_path / "interim", tmp_path / "raw", tmp_path / "processed", config)
    return tmp_path / "processed"


def test_ties_in_time_keep_the_source_order_and_only_that_order_matters(tmp_path):
    """The documented order of one user's equal timestamps is the interim table's (the source's) row order: moving
    every other row leaves the processed tables byte for byte; reversing only the ties reverses them, nothing else."""
    days = {"u": [1, 2, 2, 2, 3, 4, 4], "v": [5, 5, 6, 7, 7, 7], "w": [1, 3, 5, 7, 9]}
    rows = [(user, f"{user}{n}", day) for user, ds in days.items() for n, day in enumerate(ds)]
    rng = np.random.default_rng(0)
    ties = {}
    for row in rows:
        ties.setdefault((row[0], row[2]), []).append(row)

    def with_ties_in(order, tie_order):
        """`order` of the rows, but each tie group's rows, where they fall, in `tie_order` (a function of the group)."""
        slots = {key: iter(tie_order(group)) for key, group in ties.items()}
        return [next(slots[(user, day)]) for user, _, day in order]

    expected = {user: [f"{user}{n}" for n in range(len(ds))] for user, ds in days.items()}
    reversed_ties = {
        user: [item for day in sorted(set(ds)) for item in reversed([i for u, i, d in rows if u == user and d == day])]
        for user, ds in days.items()
    }
    source = prepare_rows(tmp_path / "source", rows)
    for attempt in range(3):
        moved = prepare_rows(tmp_path / f"moved{attempt}", with_ties_in(rng.permutation(np.array(rows, dtype=object)).tolist(), list))
        for name in ("items.parquet", "sequences.parquet"):
            assert (moved / name).read_bytes() == (source / name).read_bytes(), name
    flipped = prepare_rows(tmp_path / "flipped", with_ties_in(rows, lambda group: group[::-1]))
    for folder, wanted in ((source, expected), (flipped, reversed_ties)):
        items_table, sequences = read_processed(folder)
        id_of = dict(zip(items_table["item_idx"].to_pylist(), items_table["item_id"].to_pylist()))
        assert {row["user_id"]: [id_of[i] for i in row["items"]] for row in sequences.to_pylist()} == wanted
    assert reversed_ties["u"] == ["u0", "u3", "u2", "u1", "u4", "u6", "u5"]


def test_stats_count_the_targets_tied_in_time(tmp_path):
    days = {"u": [1, 2, 3, 4, 5, 5], "v": [1, 2, 3, 4, 4, 6], "w": [1, 2, 3, 4, 5, 6]}
    rows = [(user, f"{user}{n}", day) for user, ds in days.items() for n, day in enumerate(ds)]
    stats = json.loads((prepare_rows(tmp_path, rows) / STATS_FILE).read_text())
    # u: valid and test share day 5 (test tied with its input, valid with the next); v: valid shares day 4 with its input
    assert stats["targets_tied_in_time"] == {
        "valid": {"targets": 3, "with_input": 1, "share_with_input": 0.3333, "with_next": 1},
        "test": {"targets": 3, "with_input": 1, "share_with_input": 0.3333, "with_next": 0},
    }
    assert stats["split"] == {"name": "leave_one_out"}
    assert stats["targets"]["test"] == {"targets": 3, "users_without_training": 0, "items_without_training": 3}


def test_repeated_items_last_makes_every_target_new(tmp_path):
    sequences = {"u": ["a", "b", "c", "a", "d", "e", "b"], "v": list("abcdefg")}
    kept_stats, *_, kept = run(tmp_path / "keep", sequences, good_items(tmp_path / "keep" / "raw", "abcdefg"))
    assert kept["u"] == sequences["u"]
    assert kept_stats["targets_repeating_history"] == {"valid": 0, "test": 1}

    last_config = PrepareConfig(repeated_items="last")
    stats, *_, last = run(tmp_path / "last", sequences, good_items(tmp_path / "last" / "raw", "abcdefg"), last_config)
    assert last["u"] == ["c", "a", "d", "e", "b"]
    assert stats["drops"]["repeated_items"] == {"interactions": 2}
    assert stats["targets_repeating_history"] == {"valid": 0, "test": 0}
    for sequence in last.values():
        split = leave_one_out(sequence)
        assert split.test not in split.train and split.valid not in split.train


def test_embedded_sample_split_and_rules(tmp_path):
    ingest_hm(HM_MINI, tmp_path / "interim", HMConfig())
    config = PrepareConfig()
    stats = prepare(tmp_path / "interim", HM_MINI, tmp_path / "processed", config)
    items = pq.read_table(tmp_path / "processed" / "items.parquet")
    sequences = pq.read_table(tmp_path / "processed" / "sequences.parquet")["items"].to_pylist()
    lengths = [len(s) for s in sequences]
    assert 60 <= stats["users"] == len(sequences) <= 100
    assert stats["interactions"] == sum(lengths)
    assert min(lengths) >= config.min_user_interactions and max(lengths) <= config.max_sequence_length
    assert sorted({i for s in sequences for i in s}) == list(range(1, items.num_rows + 1))
    train = Counter(i for s in sequences for i in leave_one_out(s).train)
    assert items["train_count"].to_pylist() == [train[i] for i in range(1, items.num_rows + 1)]
    assert all((HM_MINI / path).is_file() for path in items["image_path"].to_pylist())
    assert all(text and text.strip() for text in items["text"].to_pylist())


def test_repeated_item_ids_in_the_items_table_are_refused(tmp_path):
    items = good_items(tmp_path / "raw", ["a", "b", "c"])
    interim = make_interim(tmp_path, {"u": ["a", "b", "c"]}, items)
    table = pq.read_table(interim / "items.parquet")
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), interim / "items.parquet")
    with pytest.raises(InputError, match="item_id 'a' appears 2 times"):
        prepare(interim, tmp_path / "raw", tmp_path / "processed", PrepareConfig())


def test_nobody_left_is_a_clear_error(tmp_path):
    items = good_items(tmp_path / "raw", ["a", "b", "c"])
    with pytest.raises(InputError, match="no user keeps 5 interactions"):
        run(tmp_path, {"u": ["a", "b", "c"]}, items)


def test_missing_interim_says_which_command_makes_it(tmp_path):
    with pytest.raises(InputError, match="odmt ingest"):
        prepare(tmp_path / "nowhere", tmp_path, tmp_path / "processed", PrepareConfig())


def test_write_processed_then_read_processed_round_trips(tmp_path):
    items = pa.table(
        {"item_idx": [1, 2], "item_id": ["a", "b"], "text": ["A", None], "image_path": ["a.jpg", None], "train_count": [1, 0]}, schema=ITEMS
    )
    sequences = pa.table({"user_idx": [0], "user_id": ["u"], "items": [[1, 2, 1]]}, schema=SEQUENCES)
    stats = {"users": 1, "made_by": {"test": True}}

    assert write_processed(tmp_path, items, sequences, stats) == stats

    assert [table.equals(written) for table, written in zip((items, sequences), read_processed(tmp_path))] == [True, True]
    assert json.loads((tmp_path / STATS_FILE).read_text()) == stats


def test_write_processed_refuses_a_table_off_the_contract_and_writes_nothing(tmp_path):
    items = pa.table({"item_idx": [1], "item_id": ["a"], "text": ["A"], "image_path": ["a.jpg"], "train_count": pa.array([1], pa.int32())})
    sequences = pa.table({"user_idx": [0], "user_id": ["u"], "items": [[1, 1, 1]]}, schema=SEQUENCES)
    with pytest.raises(ValueError, match="items.parquet"):
        write_processed(tmp_path / "processed", items, sequences, {})
    assert not (tmp_path / "processed").exists()


def test_the_embedded_sample_prepares_to_the_bytes_dvc_lock_hashed(tmp_path):
    """The processed tables are a DVC output: a writer that changes one byte of them fails here in seconds, not only
    in the slow `dvc repro` test."""
    params = load_params(REPO / "params.yaml")
    ingest_hm(HM_MINI, tmp_path / "interim", params.ingest.hm)
    prepare(tmp_path / "interim", HM_MINI, tmp_path / "processed", params.prepare)
    for out in yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["prepare"]["outs"]:
        written = tmp_path / "processed" / Path(out["path"]).name
        assert hashlib.md5(written.read_bytes()).hexdigest() == out["md5"], out["path"]
