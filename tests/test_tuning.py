"""The tuning set: its test split is the original valid split, with the test's conditions, and nothing of the test."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.artifacts import write_parquet
from pipeline.dataset.prepare import untrained_test_inputs
from pipeline.dataset.processed import ITEMS, ITEMS_FILE, SEQUENCES, SEQUENCES_FILE, leave_one_out, read_processed
from pipeline.dataset.tuning import write_tuning_set
from pipeline.errors import InputError
from pipeline.evaluation import ranking
from pipeline.features.store import load_tokens


def test_the_tuning_sets_test_task_is_the_original_valid_task(data, tmp_path):
    processed, features = data
    stats = write_tuning_set(processed, tmp_path / "tuning")
    items, sequences = read_processed(processed)
    tuning_items, tuning = read_processed(tmp_path / "tuning")
    original = ranking.validation_task(sequences, positions=6)
    shifted = ranking.test_task(tuning, positions=6)
    assert torch.equal(shifted.histories, original.histories) and torch.equal(shifted.targets, original.targets)
    assert shifted.exclude == original.exclude
    for before, after in zip(sequences["items"].to_pylist(), tuning["items"].to_pylist()):
        old, new = leave_one_out(before), leave_one_out(after)
        assert (list(new.train), new.valid, new.test) == (list(old.train[:-1]), old.train[-1], old.valid)
    trained = [item for s in tuning["items"].to_pylist() for item in leave_one_out(s).train]
    counts = tuning_items["train_count"].to_pylist()
    assert counts == [trained.count(i) for i in tuning_items["item_idx"].to_pylist()]
    assert counts != items["train_count"].to_pylist()
    # the catalogue is the original one, so the original features load against it
    assert tuning_items.drop_columns(["train_count"]).equals(items.drop_columns(["train_count"]))
    assert load_tokens(features / "text", tuning_items)[0].shape == load_tokens(features / "text", items)[0].shape
    assert json.loads((tmp_path / "tuning" / "stats.json").read_text()) == stats
    assert stats["interactions"] == sum(len(s) for s in sequences["items"].to_pylist()) - sequences.num_rows


def write_sequences(folder, sequences: dict[str, list[int]]) -> None:
    n = max(i for s in sequences.values() for i in s)
    write_parquet(
        folder / ITEMS_FILE,
        pa.table(
            {
                "item_idx": list(range(1, n + 1)),
                "item_id": [f"i{i}" for i in range(1, n + 1)],
                "text": ["t"] * n,
                "image_path": [None] * n,
                "train_count": [0] * n,
            },
            schema=ITEMS,
        ),
    )
    write_parquet(
        folder / SEQUENCES_FILE,
        pa.table(
            {"user_idx": list(range(len(sequences))), "user_id": list(sequences), "items": list(sequences.values())}, schema=SEQUENCES
        ),
    )


def test_a_user_too_short_for_the_shifted_split_is_named(tmp_path):
    write_sequences(tmp_path / "p", {"u0": [1, 2, 3, 4, 5], "u1": [1, 2, 3]})
    with pytest.raises(InputError, match=r"user 'u1'.*min_user_interactions >= 4"):
        write_tuning_set(tmp_path / "p", tmp_path / "t")
    with pytest.raises(InputError, match="overwrite"):
        write_tuning_set(tmp_path / "p", tmp_path / "p")


def test_test_inputs_ending_with_an_untrained_item_are_counted(tmp_path):
    # u0's valid item 9 occurs in nobody's training part; u1's valid item 1 is in u0's (and its own)
    write_sequences(tmp_path / "p", {"u0": [1, 2, 9, 3], "u1": [1, 4, 1, 5], "u2": [2, 3, 8, 7]})
    _, sequences = read_processed(tmp_path / "p")
    assert untrained_test_inputs(sequences) == 2
    # shifted by one, the test inputs end with u0's 2 (in u2's training part), u1's 4 and u2's 3 (in none)
    stats = write_tuning_set(tmp_path / "p", tmp_path / "t")
    assert stats["test_inputs_ending_untrained"] == 2
    assert pq.read_table(tmp_path / "t" / "sequences.parquet")["items"].to_pylist() == [[1, 2, 9], [1, 4, 1], [2, 3, 8]]
