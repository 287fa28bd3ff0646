import json
import math
import shutil
from dataclasses import replace

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.errors import InputError
from pipeline.evaluation import ranking
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.evaluate import evaluate
from pipeline.models.checkpoints import BEST
from pipeline.synthetic.dataset import write_random_store

CONFIG = EvaluateConfig(device="cpu", precision="fp32", cpu_threads=1, users_per_batch=16, items_per_batch=100)


def test_tasks_read_valid_then_test_targets_with_the_history_before_them(data):
    processed, _ = data
    sequences = pq.read_table(processed / "sequences.parquet")
    valid, test = ranking.validation_task(sequences, positions=12), ranking.test_task(sequences, positions=12)
    for sequence, *rows in zip(
        sequences["items"].to_pylist(), valid.histories, valid.targets, valid.exclude, test.histories, test.targets, test.exclude
    ):
        valid_history, valid_target, valid_excluded, test_history, test_target, test_excluded = rows
        assert valid_target == sequence[-2] and test_target == sequence[-1]
        assert [i for i in valid_history.tolist() if i] == sequence[:-2][-12:]
        assert [i for i in test_history.tolist() if i] == sequence[:-1][-12:]
        assert set(valid_excluded) == set(sequence[:-2]) and set(test_excluded) == set(sequence[:-1])
    assert ranking.validation_task(sequences, 12, exclude_history=False).exclude[0] == []


def test_evaluate_writes_metrics_ranks_and_popularity_groups(tmp_path, data, odmt_run):
    processed, features = data
    metrics = evaluate(odmt_run, processed, features, tmp_path, CONFIG)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert set(metrics) >= {"ensemble", "image", "text", "id", "epoch"}
    assert set(metrics["ensemble"]["test"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    _, best = load_checkpoint(odmt_run / BEST, "")
    assert metrics["epoch"] == best["epoch"]
    assert metrics["ensemble"]["valid"]["recall@10"] == pytest.approx(best["valid"]["recall@10"])  # same code, same ranks

    ranks = pq.read_table(tmp_path / "ranks.parquet").to_pylist()
    users = pq.read_metadata(processed / "sequences.parquet").num_rows
    assert len(ranks) == 2 * users and {row["split"] for row in ranks} == {"valid", "test"}
    test = [row for row in ranks if row["split"] == "test"]
    test_ranks = torch.tensor([row["rank_ensemble"] for row in test])
    assert ranking.recall_at(test_ranks, 20) == pytest.approx(metrics["ensemble"]["test"]["recall@20"])

    # the popularity ranking: 1 + the candidates (not the history, not the target) at least as often bought in
    # training; a target the history holds is excluded with it, so it ranks last
    train_count = [0, *pq.read_table(processed / "items.parquet")["train_count"].to_pylist()]
    task = ranking.test_task(pq.read_table(processed / "sequences.parquet"), positions=12)  # exclusion is the whole history
    expected = [
        len(train_count) - 1
        if target in excluded
        else 1
        + sum(
            1 for item in range(1, len(train_count)) if item != target and item not in excluded and train_count[item] >= train_count[target]
        )
        for target, excluded in zip(task.targets.tolist(), map(set, task.exclude))
    ]
    assert [row["rank_popularity"] for row in test] == expected
    assert metrics["popularity"]["test"]["recall@20"] == pytest.approx(ranking.recall_at(torch.tensor(expected), 20))
    assert len(set(expected)) > 10  # a ranking, not one value for everyone

    # per user: one row per user, split and scorer, whose means are metrics.json's to the last bit
    by_user = pq.read_table(tmp_path / "user_metrics.parquet")
    scorers = [name for name in metrics if isinstance(metrics[name], dict)]
    assert by_user.num_rows == 2 * users * len(scorers) and set(by_user["scorer"].to_pylist()) == set(scorers)
    keys = set(metrics["ensemble"]["test"])
    assert set(by_user.column_names) == {"user_idx", "user_id", "split", "scorer", "target"} | keys
    for split in ("valid", "test"):
        for scorer in scorers:
            rows = by_user.filter(pc.and_(pc.equal(by_user["split"], split), pc.equal(by_user["scorer"], scorer)))
            assert rows["user_idx"].to_pylist() == [row["user_idx"] for row in ranks if row["split"] == split]
            assert rows["target"].to_pylist() == [row["target"] for row in ranks if row["split"] == split]
            for key in keys:
                assert rows[key].to_numpy().mean() == metrics[scorer][split][key], (split, scorer, key)
    test_rows = by_user.filter(pc.and_(pc.equal(by_user["split"], "test"), pc.equal(by_user["scorer"], "ensemble")))
    hits = [rank <= 10 for rank in test_ranks.tolist()]
    assert test_rows["recall@10"].to_pylist() == [float(hit) for hit in hits]
    assert test_rows["ndcg@10"].to_pylist() == pytest.approx([1 / math.log2(r + 1) if r <= 10 else 0.0 for r in test_ranks.tolist()])

    lines = (tmp_path / "popularity_groups.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    groups = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert header[:3] == ["group", "items", "users"] and len(groups) == CONFIG.popularity_groups + 1
    assert sum(int(group["users"]) for group in groups) == users  # the groups partition the test users
    for group in groups:
        assert int(group["users"]) == sum(row["popularity_group"] == int(group["group"]) for row in test)
    train_count = pq.read_table(processed / "items.parquet")["train_count"].to_pylist()
    assert int(groups[0]["max_train_count"]) == 0 and int(groups[1]["min_train_count"]) == min(c for c in train_count if c)
    assert int(groups[-1]["max_train_count"]) == max(train_count)


def test_blocks_do_not_change_the_metrics(tmp_path, data, odmt_run):
    processed, features = data
    small = evaluate(odmt_run, processed, features, tmp_path / "small", CONFIG)
    large = evaluate(odmt_run, processed, features, tmp_path / "large", replace(CONFIG, users_per_batch=4096, items_per_batch=65536))
    assert small == large


def test_bad_inputs_are_clear_errors(tmp_path, data, odmt_run):
    processed, features = data
    with pytest.raises(InputError, match="no checkpoint"):
        evaluate(tmp_path / "empty", processed, features, tmp_path / "out", CONFIG)
    with pytest.raises(InputError, match="larger than the"):
        evaluate(odmt_run, processed, features, tmp_path / "out", replace(CONFIG, ks=(10, 100_000)))
    other = tmp_path / "features"
    shutil.copytree(features, other)
    shutil.rmtree(other / "text")
    write_random_store(other / "text", "text", pq.read_table(processed / "items.parquet"), seed=1, length=5)
    with pytest.raises(InputError, match=r"differs in text\.L"):
        evaluate(odmt_run, processed, other, tmp_path / "out", CONFIG)
