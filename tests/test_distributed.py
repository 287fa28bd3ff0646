"""Two CPU processes (gloo), started with torchrun's environment: each distributed path equals the single-process one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from pipeline import distributed
from pipeline.checkpoint import load_checkpoint
from pipeline.evaluation.ranking import RankingTask
from pipeline.features import extract as extraction
from pipeline.features.config import ExtractConfig, ImageFeaturesConfig, TextFeaturesConfig
from pipeline.models.checkpoints import LAST
from pipeline.models.objective import Objective
from pipeline.models.registry import MODELS
from pipeline.training.config import TrainConfig
from pipeline.training.data import epoch_batches
from pipeline.training.loop import batch_loss, train, validate
from tests.conftest import HM_MINI, REPO
from tests.model_fixtures import random_features, tiny

WORLD_SIZE = 2
ITEMS = 12  # few items: targets repeat across ranks, so cross-rank false negatives occur
# 7 users, rank 0 takes 4 and rank 1 takes 3, with different numbers of target rows (padding columns)
BATCH = torch.tensor(
    [
        [0, 0, 0, 1, 2, 3, 4],
        [0, 0, 5, 6, 7, 8, 9],
        [1, 3, 5, 7, 9, 11, 2],
        [0, 0, 0, 0, 4, 6, 8],
        [0, 0, 0, 2, 4, 10, 12],
        [0, 0, 0, 0, 0, 11, 1],
        [3, 6, 9, 12, 2, 5, 8],
    ]
)
GRADIENT_MODELS = ("odmt", "sasrec_ef", "fdsa")  # distillation (KL over shared columns); one fused branch; own loss path
QUICK = TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3, patience=100, device="cpu", precision="fp32", cpu_threads=1)

GLOBAL = Objective(global_negatives=True)


def spawn(worker: Callable[..., None], *args: Any) -> None:
    """Run worker(*args) on WORLD_SIZE processes with the environment torchrun would give them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(as_rank, args=(port, worker, args), nprocs=WORLD_SIZE)


def as_rank(rank: int, port: int, worker: Callable[..., None], args: tuple[Any, ...]) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
        LOCAL_WORLD_SIZE=str(WORLD_SIZE),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    worker(*args)


def model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS[name](tiny(name=name, dropout=0.0, positions=BATCH.shape[1] - 1), random_features(ITEMS))


def loss_and_gradients(out: Path) -> None:
    """Each rank: its part of BATCH through DDP with global negatives, one backward; saves loss and gradients."""
    distributed.join(torch.device("cpu"))
    rank, world_size = distributed.rank_and_world()
    for name in GRADIENT_MODELS:
        local = model(name)
        step = DistributedDataParallel(local)  # kept alive: its hooks average the gradients in backward
        loss, _, _ = batch_loss(step, BATCH.tensor_split(world_size)[rank], 3, GLOBAL)
        loss.backward()
        torch.save({"loss": loss.detach(), "grads": {n: p.grad for n, p in local.named_parameters()}}, out / f"{name}-{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gradients")
    spawn(loss_and_gradients, out)
    return out


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_global_negatives_give_the_loss_and_gradients_of_one_process_on_the_whole_batch(two_ranks, name):
    whole = model(name)
    loss, _, _ = batch_loss(whole, BATCH, 3, GLOBAL)  # one process: the same call, nothing to share
    loss.backward()
    ranks = [torch.load(two_ranks / f"{name}-{rank}.pt") for rank in range(WORLD_SIZE)]
    assert torch.allclose(sum(r["loss"] for r in ranks) / WORLD_SIZE, loss.detach(), atol=1e-6)
    for parameter, grad in whole.named_parameters():
        for rank in ranks:  # DDP leaves every rank with the same, whole-batch gradient
            assert torch.allclose(rank["grads"][parameter], grad.grad, atol=1e-6, rtol=1e-4), parameter


def test_without_global_negatives_each_rank_scores_only_its_own_batch(two_ranks):
    whole = model("odmt")
    alone, _, _ = batch_loss(whole, BATCH, 3, GLOBAL)
    shared = sum(torch.load(two_ranks / f"odmt-{rank}.pt")["loss"] for rank in range(WORLD_SIZE)) / WORLD_SIZE
    halves = [batch_loss(whole, half, 3, Objective())[0] for half in BATCH.tensor_split(WORLD_SIZE)]
    assert torch.allclose(shared, alone, atol=1e-6)
    assert not torch.allclose(sum(halves) / WORLD_SIZE, alone, atol=1e-3)  # the gathered columns really mattered


def ranking_task(users: int, seed: int) -> RankingTask:
    generator = torch.Generator().manual_seed(seed)
    histories = torch.randint(1, ITEMS + 1, (users, 6), generator=generator)
    histories[::3, :2] = 0  # some left padding
    return RankingTask(
        histories, torch.randint(1, ITEMS + 1, (users,), generator=generator), [sorted(set(h.tolist()) - {0}) for h in histories]
    )


def validation_metrics(out: Path) -> None:
    distributed.join(torch.device("cpu"))
    rank, world_size = distributed.rank_and_world()
    metrics = validate(model("odmt"), ranking_task(23, seed=1), replace(QUICK, selection_k=3, eval_users_per_batch=4))
    parts = distributed.gather_rows(torch.arange(rank * 10, rank * 10 + 3 + rank))
    torch.save({"metrics": metrics, "parts": parts}, out / f"valid-{rank}.pt")


def test_two_rank_validation_equals_single_process_validation(tmp_path):
    spawn(validation_metrics, tmp_path)
    alone = validate(model("odmt"), ranking_task(23, seed=1), replace(QUICK, selection_k=3, eval_users_per_batch=4))
    assert 0 < alone["recall@3"] < 1  # a metric the split could change
    for rank in range(WORLD_SIZE):
        saved = torch.load(tmp_path / f"valid-{rank}.pt")
        assert saved["metrics"] == alone
        assert saved["parts"].tolist() == [0, 1, 2, 10, 11, 12, 13]  # every rank's rows, whole and in rank order


def test_the_distributed_sampler_deals_every_global_batch_out_evenly():
    whole = epoch_batches(23, 8, seed=0, epoch=1)
    ranks = [epoch_batches(23, 4, seed=0, epoch=1, rank=r, world_size=WORLD_SIZE) for r in range(WORLD_SIZE)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert [torch.cat(parts).tolist() for parts in zip(*ranks)] == [b.tolist() for b in whole]
    assert epoch_batches(23, 8, seed=0, epoch=2)[0].tolist() != whole[0].tolist()  # reshuffled every epoch
    assert len(torch.cat([b for r in range(3) for b in epoch_batches(25, 4, 0, 1, r, 3)])) == 24  # 12 + 12, a tail of 1 dropped


def train_ranks(processed: Path, features: Path, out: Path) -> None:
    train(processed, features, out, tiny(dropout=0.0), replace(QUICK, global_negatives=True))


def losses(rows: list[dict[str, Any]]) -> list[float]:
    return [row["total"] for row in rows]


def test_two_ranks_train_like_one_process_with_twice_the_batch_and_resume_single_process(tmp_path, data):
    processed, features = data
    spawn(train_ranks, processed, features, tmp_path / "two")
    _, two = load_checkpoint(tmp_path / "two" / LAST, "")
    one = train(processed, features, tmp_path / "one", tiny(dropout=0.0), replace(QUICK, batch_size=2 * QUICK.batch_size))
    assert losses(two["log"]) == pytest.approx(losses(one), rel=1e-4)
    assert [r["valid_recall@10"] for r in two["log"]] == [r["valid_recall@10"] for r in one]

    resumed = train(
        processed, features, tmp_path / "two", tiny(dropout=0.0), replace(QUICK, epochs=3, batch_size=32), resume=True
    )  # one process continues the two-rank run
    assert [r["epoch"] for r in resumed] == [1, 2, 3] and resumed[:2] == two["log"]
    continued = train(processed, features, tmp_path / "one", tiny(dropout=0.0), replace(QUICK, epochs=3, batch_size=32), resume=True)
    assert losses(resumed) == pytest.approx(losses(continued), rel=1e-3)


def extract_ranks(processed: Path, out: Path, config: ExtractConfig) -> None:
    for modality in ("text", "image"):
        extraction.extract(modality, processed, HM_MINI, out / modality, config)


def shard_contents(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    contents = {}
    for path in sorted(folder.glob("shard-*.h5")):
        with h5py.File(path) as file:
            contents[path.name] = {name: file[name][()] for name in file}
    return contents


def assert_same_store(one: Path, two: Path) -> None:
    shards, others = shard_contents(one), shard_contents(two)
    assert len(shards) > WORLD_SIZE and shards.keys() == others.keys()
    for shard, datasets in shards.items():
        for name, values in datasets.items():
            assert np.array_equal(values, others[shard][name]), (one.name, shard, name)
    assert (one / "manifest.json").read_text() == (two / "manifest.json").read_text()


def test_two_rank_extraction_writes_the_single_process_shards_and_resumes(tmp_path, data, tiny_bert, tiny_dinov2):
    processed, _ = data
    config = ExtractConfig(
        text=TextFeaturesConfig(encoder=tiny_bert),
        shard_size=128,
        batch_size=32,
        device="cpu",
        image=ImageFeaturesConfig(encoder=tiny_dinov2, loader_workers=0),
        cpu_threads=1,
    )
    spawn(extract_ranks, processed, tmp_path / "two", config)
    extract_ranks(processed, tmp_path / "one", config)
    for modality in ("text", "image"):
        assert_same_store(tmp_path / "one" / modality, tmp_path / "two" / modality)

    text = tmp_path / "two" / "text"
    kept = {path.name: path.stat().st_mtime_ns for path in sorted(text.glob("shard-*.h5"))[1::2]}
    for path in sorted(text.glob("shard-*.h5"))[::2]:  # an interrupted run: every other shard missing
        path.unlink()
    spawn(extract_ranks, processed, tmp_path / "two", config)
    assert_same_store(tmp_path / "one" / "text", text)
    assert {name: (text / name).stat().st_mtime_ns for name in kept} == kept  # finished shards were not recomputed


def test_torchrun_runs_the_train_stage_on_two_processes(tmp_path, data):
    processed, features = data
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD_SIZE}",
        "-m",
        "stages.train",
        "--processed",
        str(processed),
        "--features",
        str(features),
        "--out",
        str(tmp_path / "run"),
        "-S",
        "train.epochs=1",
        "-S",
        "train.global_negatives=true",
        "-S",
        "train.device=cpu",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best epoch 1") == 1  # rank 0 alone reports
    _, checkpoint = load_checkpoint(tmp_path / "run" / LAST, "")
    assert checkpoint["epoch"] == 1 and (tmp_path / "run" / "config.json").read_text().count('"world_size": 2') == 1
