"""The temporal split (prepare.split: temporal): two global cuts in time, written out in sequences.parquet and
read by training, validation, test, evaluate and the tools that only know leave-one-out."""

import json
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.dataset.config import PrepareConfig
from pipeline.dataset.export import export_recbole
from pipeline.dataset.prepare import prepare
from pipeline.dataset.processed import SEQUENCES_FILE, read_processed, user_splits
from pipeline.dataset.tuning import write_tuning_set
from pipeline.errors import InputError
from pipeline.evaluation import ranking
from pipeline.formats.hm import HMConfig, ingest_hm
from pipeline.formats.interim import write_interim
from tests.conftest import HM_MINI
from tests.test_bad_params import assert_refused, invoke
from tests.test_prepare import good_items

DAY = 86400
# user -> the days of their interactions; an item is named by its user and day, but for two shared ones
DAYS = {
    "a": [1, 2, 3, 11, 21],  # trains on 3, validates on day 11, tests on day 21
    "b": [1, 2, 12, 13, 22, 23],  # day 13 is only test input; day 23 follows the last target
    "c": [2, 3, 4],  # trains only
    "d": [11, 12, 21],  # nothing before the first cut: no valid target, a test target with days 11 and 12 as input
    "e": [1, 2, 3, 11, 12],  # no test target: day 12 follows the last target
    "f": [21, 22, 23],  # only after the second cut: no target has an input, the user is gone
    "g": [1, 21, 22],  # one training item, no valid target
}
SHARED = {("a", 1): "x", ("d", 11): "x", ("c", 2): "y", ("b", 22): "y"}  # x: trained once (a), y: trained once (c)
# 12 interactions before day 11, 7 from day 11 to 13, 9 from day 21: the cuts at ranks floor(0.44 * 28) = 12 and
# floor(0.7 * 28) = 19 of the 28 in time order fall on days 11 and 21
TEMPORAL = PrepareConfig(min_user_interactions=3, split="temporal", temporal_cuts=(0.44, 0.7))


def item(user: str, day: int) -> str:
    return SHARED.get((user, day), f"{user}{day:02d}")


def run_temporal(tmp_path, config=TEMPORAL):
    rows = [(user, item(user, day), DAY * day) for user, days in DAYS.items() for day in days]
    interactions = pa.table({k: list(v) for k, v in zip(("user_id", "item_id", "timestamp"), zip(*rows))})
    items = good_items(tmp_path / "raw", sorted({i for _, i, _ in rows}))
    table = pa.table({"item_id": list(items), "text": [t for t, _ in items.values()], "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {"source": "test"})
    stats = prepare(tmp_path / "interim", tmp_path / "raw", tmp_path / "processed", config)
    items_table, sequences = read_processed(tmp_path / "processed")
    assert json.loads((tmp_path / "processed" / "stats.json").read_text()) == stats
    return stats, items_table, sequences


def by_user(items_table, sequences):
    """user -> (item ids, train_end, valid_at, test_at) as sequences.parquet writes them."""
    id_of = dict(zip(items_table["item_idx"].to_pylist(), items_table["item_id"].to_pylist()))
    return {
        row["user_id"]: ([id_of[i] for i in row["items"]], row["train_end"], row["valid_at"], row["test_at"])
        for row in sequences.to_pylist()
    }


def test_cuts_split_targets_inputs_and_training_as_documented(tmp_path):
    stats, items_table, sequences = run_temporal(tmp_path)
    assert stats["split"] == {
        "name": "temporal",
        "cuts": [0.44, 0.7],
        "cut_timestamps": [11 * DAY, 21 * DAY],
        "cut_dates": ["1970-01-12 00:00:00", "1970-01-22 00:00:00"],
        "interactions": {"before_first_cut": 12, "between_cuts": 7, "after_second_cut": 9},
        "training_interactions": 12,
        "targets": {"valid": 3, "test": 4},
    }
    assert by_user(items_table, sequences) == {
        "a": (["x", "a02", "a03", "a11", "a21"], 3, 3, 4),
        "b": (["b01", "b02", "b12", "b13", "y"], 2, 2, 4),
        "c": (["y", "c03", "c04"], 3, None, None),
        "d": (["x", "d12", "d21"], 0, None, 2),
        "e": (["e01", "e02", "e03", "e11"], 3, 3, None),
        "g": (["g01", "g21"], 1, None, 1),
    }
    drops = stats["drops"]
    assert drops["after_last_target"] == {"interactions": 6, "users": 1}  # b23, e12, g22 and all of f
    assert drops["targets_without_input"] == {"valid": 1, "test": 1}  # d11, f21
    assert drops["max_sequence_length"] == {"interactions": 0, "valid_targets": 0}
    assert drops["items_no_longer_occurring"] == {"items": 6}  # b23, e12, g22, f21, f22, f23
    assert stats["targets"] == {
        "valid": {"targets": 3, "users_without_training": 0, "items_without_training": 3},
        "test": {"targets": 4, "users_without_training": 1, "items_without_training": 3},  # y is trained (c)
    }
    assert stats["targets_tied_in_time"]["test"] == {"targets": 4, "with_input": 0, "share_with_input": 0.0, "with_next": 0}
    # train_count: occurrences before the first cut only (x at d's day 11 and y at b's day 22 do not count)
    counts = dict(zip(items_table["item_id"].to_pylist(), items_table["train_count"].to_pylist()))
    assert counts["x"] == 1 and counts["y"] == 1 and counts["a11"] == 0 and counts["d12"] == 0
    assert sum(counts.values()) == 12


def test_training_validation_and_test_read_the_written_split(tmp_path):
    from pipeline.training.data import training_sequences

    _, items_table, sequences = run_temporal(tmp_path)
    name = dict(zip(items_table["item_idx"].to_pylist(), items_table["item_id"].to_pylist())) | {0: None}
    users = sequences["user_id"].to_pylist()

    def read(task):
        rows = [users[u] for u in task.rows().tolist()]
        inputs = [[name[i] for i in history if i] for history in task.histories.tolist()]
        return {user: (history, name[target]) for user, history, target in zip(rows, inputs, task.targets.tolist())}

    assert read(ranking.validation_task(sequences, positions=3)) == {
        "a": (["x", "a02", "a03"], "a11"),
        "b": (["b01", "b02"], "b12"),
        "e": (["e01", "e02", "e03"], "e11"),
    }
    assert read(ranking.test_task(sequences, positions=3)) == {
        "a": (["a02", "a03", "a11"], "a21"),  # the last 3 of the 4 before it
        "b": (["b02", "b12", "b13"], "y"),
        "d": (["x", "d12"], "d21"),
        "g": (["g01"], "g21"),
    }
    # training: the interactions before the first cut, nothing later; d has none and adds no row
    rows = training_sequences(sequences, positions=4).tolist()
    assert [[name[i] for i in row if i] for row in rows] == [
        ["x", "a02", "a03"],
        ["b01", "b02"],
        ["y", "c03", "c04"],
        ["e01", "e02", "e03"],
        ["g01"],
    ]
    prefixes = training_sequences(sequences, positions=4, instances="prefixes").tolist()
    assert len(prefixes) == 2 + 1 + 2 + 2  # a, b, c, e: prefixes of two or more items


def test_a_short_max_sequence_length_counts_the_valid_targets_it_cuts_off(tmp_path):
    stats, items_table, sequences = run_temporal(tmp_path, replace(TEMPORAL, max_sequence_length=3))
    written = by_user(items_table, sequences)
    assert written["a"] == (["a03", "a11", "a21"], 1, 1, 2)
    assert written["b"] == (["b12", "b13", "y"], 0, None, 2)  # its valid target b12 lost its input
    assert stats["drops"]["max_sequence_length"] == {"interactions": 5, "valid_targets": 1}  # a: 2, b: 2, e: 1
    assert stats["split"]["targets"] == {"valid": 2, "test": 4}


def test_the_tie_order_and_the_cut_keep_equal_timestamps_together(tmp_path):
    """Interactions of one day fall on one side of a cut; the first after a cut among several of one day is the
    first in source order, and stats.json counts it as tied with the next."""
    rows = [("u", "p", 1), ("u", "q", 2), ("u", "r", 5), ("u", "s", 5), ("u", "t", 9), ("v", "p", 1), ("v", "q", 3), ("v", "t", 4)]
    rows += [("w", "p", 5), ("w", "q", 5), ("w", "r", 5)]
    interactions = pa.table({k: list(v) for k, v in zip(("user_id", "item_id", "timestamp"), zip(*rows))})
    items = good_items(tmp_path / "raw", "pqrst")
    table = pa.table({"item_id": list(items), "text": [t for t, _ in items.values()], "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {})
    # 11 interactions: ranks 5 and 10 in time order are timestamps 5 and 9
    stats = prepare(tmp_path / "interim", tmp_path / "raw", tmp_path / "out", replace(TEMPORAL, temporal_cuts=(0.5, 0.95)))
    assert stats["split"]["cut_timestamps"] == [5, 9]
    assert stats["split"]["interactions"] == {"before_first_cut": 5, "between_cuts": 5, "after_second_cut": 1}
    items_table, sequences = read_processed(tmp_path / "out")
    assert by_user(items_table, sequences)["u"] == (["p", "q", "r", "s", "t"], 2, 2, 4)  # r, then s: source order
    assert stats["targets_tied_in_time"]["valid"] == {"targets": 1, "with_input": 0, "share_with_input": 0.0, "with_next": 1}


@pytest.mark.parametrize(
    ("cuts", "said"),
    [
        ((0.01, 0.5), "leaving 0 interactions before the first cut, 12 between the cuts and 16 after the second"),
        ((0.44, 0.45), "leaving 12 interactions before the first cut, 0 between the cuts and 16 after the second"),
    ],
)
def test_cuts_that_leave_a_part_empty_are_refused_naming_the_setting_and_the_counts(tmp_path, cuts, said):
    with pytest.raises(InputError, match=r"prepare\.temporal_cuts = \[.*\] cut at timestamps") as error:
        run_temporal(tmp_path, replace(TEMPORAL, temporal_cuts=cuts))
    assert said in str(error.value)
    assert not (tmp_path / "processed").exists()


def test_cuts_whose_valid_period_has_no_target_with_an_input_are_refused(tmp_path):
    rows = [(user, f"{user}{t}", t) for user in "uvw" for t in (1, 2, 3, 9)] + [("z", "z5", 5), ("z", "z6", 6), ("z", "z7", 7)]
    interactions = pa.table({k: list(v) for k, v in zip(("user_id", "item_id", "timestamp"), zip(*rows))})
    items = good_items(tmp_path / "raw", sorted({i for _, i, _ in rows}))
    table = pa.table({"item_id": list(items), "text": [t for t, _ in items.values()], "image_path": [p for _, p in items.values()]})
    write_interim(tmp_path / "interim", interactions, table, {})
    # 15 interactions: the cuts at ranks 9 and 12 are timestamps 5 and 9; only z interacts between them, with nothing before
    with pytest.raises(InputError, match="9 of them to train on and 0 valid and 3 test targets"):
        prepare(tmp_path / "interim", tmp_path / "raw", tmp_path / "out", replace(TEMPORAL, temporal_cuts=(0.62, 0.82)))


def test_a_cut_leaving_nothing_to_train_on_is_exit_2_naming_the_setting(data, tmp_path):
    out = tmp_path / "processed"
    result = invoke("prepare", data, out, "prepare.split=temporal", "prepare.temporal_cuts=[0.0001, 0.9]")
    assert_refused(result, out, "prepare.temporal_cuts = [0.0001, 0.9]", "leaving 0 interactions before the first cut")


def test_cuts_out_of_order_are_a_config_error_naming_the_key(data, tmp_path):
    out = tmp_path / "processed"
    result = invoke("prepare", data, out, "prepare.temporal_cuts=[0.9, 0.8]")
    assert_refused(result, out, "prepare.temporal_cuts = [0.9, 0.8]: give two increasing quantiles")


@pytest.fixture(scope="module")
def hm_temporal(tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal")
    ingest_hm(HM_MINI, root / "interim", HMConfig())
    stats = prepare(root / "interim", HM_MINI, root / "processed", PrepareConfig(split="temporal"))
    return root / "processed", stats


def test_the_embedded_sample_splits_in_time(hm_temporal):
    processed, stats = hm_temporal
    items, sequences = read_processed(processed)
    splits = user_splits(sequences)
    assert stats["users"] == sequences.num_rows and stats["items"] == items.num_rows
    assert stats["split"]["targets"] == {name: int((splits.at(name) >= 0).sum()) for name in ("valid", "test")}
    assert min(stats["split"]["targets"].values()) > 0
    assert items["train_count"].to_numpy().sum() == stats["split"]["training_interactions"] == splits.train_end.sum()
    assert {k: stats["targets_tied_in_time"][k]["with_input"] for k in ("valid", "test")} == {
        "valid": 0,
        "test": 0,
    }  # a cut never splits a day


def test_tools_that_shift_or_export_leave_one_out_refuse_a_temporal_set(hm_temporal, tmp_path):
    processed, _ = hm_temporal
    with pytest.raises(InputError, match="tuning set shifts a leave-one-out split only"):
        write_tuning_set(processed, tmp_path / "tuning")
    with pytest.raises(InputError, match="RecBole's leave-one-out"):
        export_recbole(processed, tmp_path / "recbole", "hm")
    assert not (tmp_path / "tuning").exists() and not (tmp_path / "recbole").exists()


def test_a_split_breaking_its_rules_is_refused_on_read(hm_temporal, tmp_path):
    processed, _ = hm_temporal
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("items.parquet", "stats.json"):
        (broken / name).write_bytes((processed / name).read_bytes())
    sequences = pq.read_table(processed / SEQUENCES_FILE)
    train_end = sequences["train_end"].to_pylist()
    user = next(u for u, at in enumerate(sequences["valid_at"].to_pylist()) if at is not None)
    train_end[user] += 1  # the valid target would be trained on
    pq.write_table(
        sequences.set_column(sequences.schema.get_field_index("train_end"), "train_end", pa.array(train_end, pa.int32())),
        broken / SEQUENCES_FILE,
    )
    with pytest.raises(InputError, match=f"user_idx {user} .* breaks the split's rules"):
        read_processed(broken)


def test_every_model_trains_and_evaluates_on_the_temporal_split(hm_temporal, tmp_path):
    from pipeline.evaluation.config import EvaluateConfig
    from pipeline.evaluation.evaluate import evaluate
    from pipeline.synthetic.dataset import write_random_store
    from pipeline.training.config import TrainConfig
    from pipeline.training.loop import train
    from tests.model_fixtures import tiny

    processed, stats = hm_temporal
    items = pq.read_table(processed / "items.parquet")
    write_random_store(tmp_path / "features" / "text", "text", items, seed=1)
    write_random_store(tmp_path / "features" / "image", "image", items, seed=2)
    train(
        processed,
        tmp_path / "features",
        tmp_path / "run",
        tiny(),
        TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32", cpu_threads=1),
    )
    config = EvaluateConfig(device="cpu", precision="fp32", cpu_threads=1, users_per_batch=16, items_per_batch=100)
    metrics = evaluate(tmp_path / "run", processed, tmp_path / "features", tmp_path / "metrics", config)
    assert set(metrics["ensemble"]) == {"valid", "test"}
    ranks = pq.read_table(tmp_path / "metrics" / "ranks.parquet").to_pylist()
    _, sequences = read_processed(processed)
    with_target = {
        name: [u for u, at in zip(sequences["user_id"].to_pylist(), user_splits(sequences).at(name)) if at >= 0]
        for name in ("valid", "test")
    }
    for name, users in with_target.items():
        assert [row["user_id"] for row in ranks if row["split"] == name] == users
        assert len(users) == stats["split"]["targets"][name]
