import csv
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.dataset.processed import leave_one_out
from pipeline.errors import InputError
from pipeline.formats.hm import HMConfig, ingest_hm
from pipeline.training.config import TrainConfig
from pipeline.training.data import RankingTask, left_pad, validation_task
from pipeline.training.loop import evaluate_ranking, load_item_features, train
from pipeline.models.odmt import ODMT
from tests.conftest import HM_MINI
from tests.model_fixtures import tiny, write_random_store

QUICK = TrainConfig(epochs=4, batch_size=32, learning_rate=3e-3, patience=100, device="cpu", precision="fp32", cpu_threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """hm-mini processed, with small random feature stores standing in for `odmt extract`."""
    root = tmp_path_factory.mktemp("train")
    ingest_hm(HM_MINI, root / "interim", HMConfig())
    prepare(root / "interim", HM_MINI, root / "processed", PrepareConfig())
    items = pq.read_table(root / "processed" / "items.parquet")
    write_random_store(root / "features" / "text", "text", items, seed=1)
    write_random_store(root / "features" / "image", "image", items, seed=2)
    return root / "processed", root / "features"


def read_log(run: Path) -> list[dict[str, str]]:
    with (run / "train_log.tsv").open() as file:
        return list(csv.DictReader(file, delimiter="\t"))


def test_resumed_run_ends_with_the_same_weights(tmp_path, data):
    processed, features = data
    train(processed, features, tmp_path / "whole", tiny(), QUICK)
    train(processed, features, tmp_path / "split", tiny(), replace(QUICK, epochs=2))
    train(processed, features, tmp_path / "split", tiny(), QUICK, resume=True)
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=False)
    assert whole["epoch"] == split["epoch"] == 4
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    drop_seconds = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop_seconds(read_log(tmp_path / "whole")) == drop_seconds(read_log(tmp_path / "split"))
    log = read_log(tmp_path / "whole")
    assert {"ce_image", "ce_text", "ce_id", "kl_image", "kl_text", "kl_id", "distillation_weight", "total",
            "valid_recall@10", "valid_ndcg@10", "seconds"} <= set(log[0])
    assert (tmp_path / "whole" / "best.pt").is_file() and (tmp_path / "whole" / "config.json").is_file()


def test_a_tiny_run_learns_the_sequences_it_sees(tmp_path, data):
    processed, features = data
    sequences = pq.read_table(processed / "sequences.parquet")["items"].to_pylist()
    positions = tiny().positions
    seen = RankingTask(  # predict the last training item from the ones before it: data the model trains on
        histories=torch.tensor([left_pad(leave_one_out(s).train[:-1], positions) for s in sequences]),
        targets=torch.tensor([leave_one_out(s).train[-1] for s in sequences]),
        exclude=[[] for _ in sequences],
    )
    config = tiny(dropout=0.0, hidden_size=32)
    torch.manual_seed(QUICK.seed)
    untrained = evaluate_ranking(ODMT(config, load_item_features(processed, features)), seen, 1024, (10,))
    rows = train(processed, features, tmp_path / "run", config, replace(QUICK, epochs=60, learning_rate=1e-2))
    trained_model = ODMT(config, load_item_features(processed, features))
    trained_model.load_state_dict(torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"])
    trained = evaluate_ranking(trained_model, seen, 1024, (10,))
    assert rows[-1]["total"] < rows[0]["total"]
    assert trained["recall@10"] > untrained["recall@10"] + 0.1


def test_validation_reads_the_valid_target_never_the_test_target(data):
    processed, _ = data
    sequences = pq.read_table(processed / "sequences.parquet")
    task = validation_task(sequences, positions=12)
    for sequence, history, target, excluded in zip(sequences["items"].to_pylist(), task.histories, task.targets, task.exclude):
        assert target == sequence[-2]
        assert [i for i in history.tolist() if i] == sequence[:-2][-12:]
        assert set(excluded) == set(sequence[:-2])


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
