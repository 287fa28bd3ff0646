"""RecBole as a peer: our export against RecBole's own loader, its scores through our evaluator, the comparison."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.config import load_params
from pipeline.dataset.export import export_recbole
from pipeline.dataset.processed import leave_one_out, read_processed
from pipeline.dataset.tuning import write_tuning_set
from pipeline.errors import InputError
from pipeline.evaluation import ranking
from pipeline.peers import recbole as peer
from pipeline.peers.config import RecBolePeerConfig
from tests.conftest import REPO

QUICK = RecBolePeerConfig(epochs=2, stopping_step=2, train_batch_size=256, settings={"metric_decimal_place": 8})
CPU = torch.device("cpu")


def test_without_recbole_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "recbole.config", None)  # what an environment without the extra sees
    with pytest.raises(InputError, match=r"pip install -e '\.\[peers\]'"):
        peer.import_recbole()


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory) -> Path:
    pytest.importorskip("recbole", reason="RecBole is the peers extra: pip install -e '.[peers]'")
    folder = tmp_path_factory.mktemp("recbole") / "odmt"
    export_recbole(data[0], folder, "odmt")
    return folder


def recbole_split(folder: Path, positions: int):
    recbole = peer.import_recbole()
    with peer.recbole_run_folder(folder.parent / "load"):
        config = recbole["Config"](model="SASRec", dataset=folder.name, config_dict=peer.recbole_settings(0, folder, QUICK, positions, CPU))
        dataset = recbole["create_dataset"](config)
        counts = (dataset.user_num - 1, dataset.item_num - 1, dataset.inter_num)  # before the split reshapes it
        return dataset, counts, recbole["data_preparation"](config, dataset)


def test_recbole_loads_the_export_with_our_counts_and_split(data, exported):
    sequences = pq.read_table(data[0] / "sequences.parquet")
    users = dict(zip(sequences["user_id"].to_pylist(), sequences["items"].to_pylist()))
    item_ids = dict(zip(*(pq.read_table(data[0] / "items.parquet")[c].to_pylist() for c in ("item_idx", "item_id"))))
    dataset, counts, (train, valid, test) = recbole_split(exported, positions=14)
    assert counts == (len(users), len(item_ids), sum(len(s) for s in users.values()))
    tokens = {field: dataset.field2id_token[field] for field in ("user_id", "item_id")}
    for split, loader in (("valid", valid), ("test", test)):
        interactions = loader._dataset.inter_feat
        targets = {
            tokens["user_id"][u]: tokens["item_id"][i] for u, i in zip(interactions["user_id"].tolist(), interactions["item_id"].tolist())
        }
        assert targets == {user: item_ids[getattr(leave_one_out(s), split)] for user, s in users.items()}, split
    # RecBole trains on every prefix of the training part: one instance per item after the first
    assert len(train._dataset) == sum(len(leave_one_out(s).train) - 1 for s in users.values())


def test_recbole_keeps_items_without_interactions_as_candidates(data, tmp_path):
    """The tuning set keeps the catalogue, so an item that was only a test target occurs nowhere: still an item."""
    pytest.importorskip("recbole", reason="RecBole is the peers extra: pip install -e '.[peers]'")
    write_tuning_set(data[0], tmp_path / "tuning")
    items, sequences = read_processed(tmp_path / "tuning")
    occurring = {item for s in sequences["items"].to_pylist() for item in s}
    assert len(occurring) < items.num_rows
    export_recbole(tmp_path / "tuning", tmp_path / "recbole" / "odmt", "odmt")
    _, (_, item_count, _), _ = recbole_split(tmp_path / "recbole" / "odmt", positions=14)
    assert item_count == items.num_rows


@pytest.fixture(scope="module")
def recbole_sasrec(exported, tmp_path_factory) -> peer.RecBoleRun:
    return peer.train_recbole("sasrec", 0, exported, tmp_path_factory.mktemp("run"), QUICK, 6, CPU)


def test_recbole_scores_ranked_by_our_evaluator_give_recboles_own_numbers(data, recbole_sasrec):
    sequences, items = pq.read_table(data[0] / "sequences.parquet"), pq.read_table(data[0] / "items.parquet")
    ranker = peer.RecBoleRanker(recbole_sasrec, items)
    tasks = {
        "valid": ranking.validation_task(sequences, 6, exclude_history=False),
        "test": ranking.test_task(sequences, 6, exclude_history=False),
    }
    ours = peer.rank_recbole(ranker, tasks, users_per_batch=16, items_per_batch=100, ks=(10, 20))
    for split in tasks:  # RecBole does not exclude history for sequential models: neither do we here
        for metric, value in recbole_sasrec.own_metrics[split].items():
            assert ours[split][metric] == pytest.approx(value, abs=1e-6), (split, metric)


def test_a_failing_recbole_run_names_the_model_and_its_log(tmp_path):
    pytest.importorskip("recbole", reason="RecBole is the peers extra: pip install -e '.[peers]'")
    empty = tmp_path / "data" / "odmt"
    empty.mkdir(parents=True)
    with pytest.raises(InputError, match=r"RecBole's GRU4Rec \(seed 0\) failed.*recbole\.log"):
        peer.train_recbole("gru4rec", 0, empty, tmp_path / "run", QUICK, 6, CPU)


def test_compare_writes_both_libraries_side_by_side_and_continues_where_it_stopped(data, exported, tmp_path):
    from pipeline.peers.compare import compare_recbole

    params = load_params(
        REPO / "params.yaml",
        [
            "compare.models=[gru4rec]",
            "compare.seeds=[0]",
            "compare.recbole.epochs=2",
            "train.epochs=2",
            "train.device=cpu",
            "model.positions=6",
            "compare.device=cpu",
            "model.hidden_size=16",
        ],
    )
    result = compare_recbole(data[0], data[1], tmp_path, params)
    assert [(run["library"], run["model"]) for run in result["runs"]] == [("recbole", "gru4rec"), ("ours", "gru4rec")]
    table = (tmp_path / "comparison.md").read_text()
    assert "GRU4Rec, RecBole 1.2.1" in table and "GRU4Rec, ours" in table and "Pop" in table
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["summary"]["gru4rec"]["recbole"]["test"]["recall@10"] == [result["runs"][0]["test"]["recall@10"]]
    metrics = tmp_path / "recbole" / "gru4rec-seed0" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    compare_recbole(data[0], data[1], tmp_path, params)  # everything is there: nothing is trained again
    assert metrics.stat().st_mtime_ns == stamp


def test_our_model_is_the_experiment_run_of_its_name():
    from pipeline.peers.compare import our_params

    params = load_params(REPO / "params.yaml")
    runs = {"sasrec": {"model.name": "sasrec", "train.batch_size": 7}, "gru4rec": {"model.name": "nextitnet"}}
    params = replace(params, experiments=replace(params.experiments, pipeline_runs=(), runs=runs))
    assert (our_params(params, "sasrec").model.name, our_params(params, "sasrec").train.batch_size) == ("sasrec", 7)
    nextitnet = our_params(params, "nextitnet")  # no run of that name: the model and train sections
    assert nextitnet.model.name == "nextitnet" and nextitnet.train == params.train
    with pytest.raises(InputError, match="experiments.runs.gru4rec trains model.name 'nextitnet'"):
        our_params(params, "gru4rec")
