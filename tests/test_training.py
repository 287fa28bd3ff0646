import csv
import math
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.dataset.processed import leave_one_out, left_pad
from pipeline.errors import InputError
from pipeline.evaluation.ranking import RankingTask, pessimistic_ranks, recall_at
from pipeline.features.items import load_item_features
from pipeline.models.checkpoints import BEST, LAST, load_weights
from pipeline.models.id_only import IDOnly
from pipeline.models.objective import Objective
from pipeline.models.registry import MODELS, build_model
from pipeline.training.config import TrainConfig
from pipeline.training.data import training_sequences
from pipeline.training.loop import train, training_step, validate
from tests.conftest import REPO
from tests.model_fixtures import random_features, tiny

QUICK = TrainConfig(epochs=4, batch_size=32, learning_rate=3e-3, patience=100, device="cpu", precision="fp32", cpu_threads=1)


def read_log(run: Path, name: str = "train_log.tsv") -> list[dict[str, str]]:
    with (run / name).open() as file:
        return list(csv.DictReader(file, delimiter="\t"))


def test_resumed_run_ends_with_the_same_weights(tmp_path, data):
    processed, features = data
    train(processed, features, tmp_path / "whole", tiny(), QUICK)
    train(processed, features, tmp_path / "split", tiny(), replace(QUICK, epochs=2))
    train(processed, features, tmp_path / "split", tiny(), QUICK, resume=True)
    (whole, whole_values), (split, split_values) = (load_checkpoint(tmp_path / run / LAST, "") for run in ("whole", "split"))
    assert whole_values["epoch"] == split_values["epoch"] == 4
    for name, tensor in whole.items():
        assert torch.equal(tensor, split[name]), name
    assert (tmp_path / "whole" / "train_log.tsv").read_bytes() == (tmp_path / "split" / "train_log.tsv").read_bytes()
    log = read_log(tmp_path / "whole")
    assert {
        "ce_image",
        "ce_text",
        "ce_id",
        "kl_image",
        "kl_text",
        "kl_id",
        "distillation_weight",
        "total",
        "valid_recall@10",
        "valid_ndcg@10",
    } <= set(log[0])
    timing = read_log(tmp_path / "split", "timing.tsv")  # the resumed run kept the first two epochs' timings
    assert [row["epoch"] for row in timing] == ["1", "2", "3", "4"] and all(float(row["seconds"]) > 0 for row in timing)
    assert (tmp_path / "whole" / BEST).is_file() and (tmp_path / "whole" / "config.json").is_file()


@pytest.mark.parametrize("name", ["odmt", "sasrec", "gru4rec", "nextitnet", "fdsa", "unisrec", "sasrec_lf", "sasrec_ef"])
def test_a_tiny_run_learns_the_sequences_it_sees_better_than_popularity(tmp_path, data, name):
    processed, features = data
    sequences = pq.read_table(processed / "sequences.parquet")["items"].to_pylist()
    positions = tiny().positions
    seen = RankingTask(  # predict the last training item from the ones before it: data the model trains on
        histories=torch.tensor([left_pad(leave_one_out(s).train[:-1], positions) for s in sequences]),
        targets=torch.tensor([leave_one_out(s).train[-1] for s in sequences]),
        exclude=[[] for _ in sequences],
    )
    item_features = load_item_features(processed, features)
    popularity = pessimistic_ranks(
        {"x": torch.ones(len(sequences), 1)},
        {"x": item_features.popularity.float().unsqueeze(1)},
        seen.targets,
        seen.exclude,
        {"x": ["x"]},
        4096,
    )["x"]
    config = tiny(name=name, dropout=0.0, hidden_size=32)
    torch.manual_seed(QUICK.seed)
    untrained = validate(MODELS[name](config, item_features), seen, QUICK)
    rows = train(processed, features, tmp_path / "run", config, replace(QUICK, epochs=60, learning_rate=3e-3))
    trained_model = MODELS[name](config, item_features)
    load_weights(trained_model, load_checkpoint(tmp_path / "run" / LAST, "")[0], tmp_path / "run" / LAST, "")
    trained = validate(trained_model, seen, QUICK)
    assert rows[-1]["total"] < rows[0]["total"]
    assert trained["recall@10"] > untrained["recall@10"] + 0.1
    assert trained["recall@10"] > recall_at(popularity, 10) + 0.1


def test_two_runs_on_the_same_inputs_write_the_same_bytes(tmp_path, data):
    """What DVC hashes and git tracks is a function of the inputs: timings live apart, in timing.tsv."""
    processed, features = data
    for run in ("first", "second"):
        train(processed, features, tmp_path / run, tiny(), replace(QUICK, epochs=2))
    for name in (BEST, LAST, "train_log.tsv", "config.json"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    assert {"seconds", "sequences_per_s"} <= set(read_log(tmp_path / "first", "timing.tsv")[0])
    assert "seconds" not in read_log(tmp_path / "first")[0]


def test_features_read_from_the_shards_train_the_same_weights_as_features_in_memory(tmp_path, data):
    processed, features = data
    for storage in ("shards", "memory"):
        train(processed, features, tmp_path / storage, tiny(), replace(QUICK, epochs=2, item_features=storage))
    assert read_log(tmp_path / "shards") == read_log(tmp_path / "memory")
    weights = [load_checkpoint(tmp_path / s / LAST, "")[0] for s in ("shards", "memory")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_runs_are_not_overwritten_and_resume_needs_a_run(tmp_path, data):
    processed, features = data
    train(processed, features, tmp_path / "run", tiny(), replace(QUICK, epochs=1))
    with pytest.raises(InputError, match="--resume"):
        train(processed, features, tmp_path / "run", tiny(), QUICK)
    with pytest.raises(InputError, match="nothing to resume"):
        train(processed, features, tmp_path / "other", tiny(), QUICK, resume=True)


def test_features_of_another_items_table_are_refused(tmp_path, data):
    processed, features = data
    other = tmp_path / "processed"
    other.mkdir()
    items = pq.read_table(processed / "items.parquet")
    pq.write_table(items.slice(0, items.num_rows - 1), other / "items.parquet")
    pq.write_table(pq.read_table(processed / "sequences.parquet"), other / "sequences.parquet")
    with pytest.raises(InputError, match="another items table"):
        load_item_features(other, features)


def test_prefix_instances_are_trained_where_ranking_reads_the_user():
    users = pa.table({"items": [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 3]]})  # training parts [1, 2, 3, 4] and [7, 8, 9]
    rows = training_sequences(users, positions=3, instances="prefixes")
    assert rows.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [0, 0, 7, 8], [0, 7, 8, 9]]
    assert training_sequences(users, positions=3).tolist() == [[1, 2, 3, 4], [0, 7, 8, 9]]
    torch.manual_seed(0)
    model = IDOnly(tiny(name="sasrec", dropout=0.0, positions=3), random_features(10)).eval()
    loss, _ = model(rows, epoch=1, objective=Objective(loss="full_softmax", last_position_only=True))
    items = model.all_item_embeddings()
    ranked = model.user_embeddings(rows[:, :-1], items)["id"] @ items["id"][1:].T  # what ranking scores, by row
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(ranked, rows[:, -1] - 1), atol=1e-6)


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
CPU_ONLY_READS = {"Dropout.forward", "ODMT.encode_items"}  # behind `device.type == "cpu"`: free on the host, skipped elsewhere


@pytest.mark.parametrize("name", ["odmt", "sasrec", "sasrec_lf"])
def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch, name):
    """Every value the project's code reads back to the host in one step, counted on CPU (on CUDA each would wait for the device)."""
    torch.manual_seed(0)
    model = build_model(tiny(name=name), random_features(10)).train()
    optimizer = torch.optim.AdamW(model.parameters())
    sequences = torch.tensor([[0, 0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 1, 2], [0, 0, 0, 0, 3, 5, 7]])
    reads: list[str] = []
    for method in HOST_READS:
        original = getattr(torch.Tensor, method)

        def counted(tensor, *args, _original=original, **kwargs):
            caller = sys._getframe(1)
            if Path(caller.f_code.co_filename).is_relative_to(REPO / "pipeline"):
                reads.append(caller.f_code.co_qualname)
            return _original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counted)
    parts, targets = training_step(model, optimizer, torch.amp.GradScaler(enabled=False), sequences, 3, Objective(), 1e-3, QUICK)
    monkeypatch.undo()
    assert set(reads) <= CPU_ONLY_READS, reads
    assert all(value.ndim == 0 for value in parts.values()) and targets.item() == 12
    assert math.isfinite(parts["total"].item())
