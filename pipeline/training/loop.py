"""Training: AdamW on the in-batch loss, validation by full ranking every epoch, the best checkpoint by valid Recall@k.

The test target is never read here. Checkpoints are safetensors files (pipeline/checkpoint.py);
the last one holds everything needed to continue (`resume`) and end with the same bytes as
an uninterrupted run on CPU: optimiser, epoch, early-stopping state and log (randomness
is seeded per epoch). A resume with another recipe is refused, and config.json says
whether the run finished, so a run cut short is never evaluated. Under torchrun the same
function runs on every rank: DistributedDataParallel, each rank its share of every batch
and of the validation users, rank 0 alone writing; a run resumes on any number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.autograd.profiler import record_function
from torch.nn.parallel import DistributedDataParallel

from pipeline import distributed
from pipeline.artifacts import read_tsv, write_json, write_tsv
from pipeline.checkpoint import join_optimizer, load_checkpoint, save_checkpoint, split_optimizer
from pipeline.dataset.processed import read_processed
from pipeline.errors import InputError
from pipeline.evaluation.ranking import RankingTask, inference_model, item_embeddings, rank_task, ranking_metrics, validation_task
from pipeline.features.items import feature_identities, load_item_features
from pipeline.models.base import Recommender
from pipeline.models.checkpoints import (
    BEST,
    CONFIG,
    LAST,
    LOG,
    TIMING,
    check_features,
    checkpoint_tensors,
    load_weights,
    read_run_config,
)
from pipeline.models.config import ModelConfig
from pipeline.models.objective import Objective, target_positions
from pipeline.models.registry import build_model
from pipeline.runtime import autocast, resolve_device, set_up_cpu_process
from pipeline.training.config import TrainConfig
from pipeline.training.data import epoch_batches, training_sequences
from pipeline.training.schedule import already_diverged, check_schedule, diverged, learning_rate_at

log = logging.getLogger(__name__)

LAST_VALUES = ("model_config", "features", "epoch", "best", "stale", "log", "optimizer")
# The keys a resumed run may give other values: how long it trains, where and in which blocks it computes. Every
# other model.* and train.* key changes what an epoch computes, so `--resume` refuses another value of it.
# deduplicate_items, recompute_items and attention encode the same items with the same weights: equal losses (tests/test_odmt.py)
# at dropout 0; with dropout they draw other masks, so a run resumed with another value trains the same model, though
# not to the same bytes. train.batch_size counts per process: the batch of all processes is what must not change, and
# one process scores against its whole batch, as train.global_negatives has every process do.
RESUMABLE = frozenset(
    {
        "train.epochs",
        "train.patience",
        "train.device",
        "train.cpu_threads",
        "train.item_features",
        "train.eval_users_per_batch",
        "train.eval_items_per_batch",
        "model.deduplicate_items",
        "model.recompute_items",
        "model.attention",
    }
)
GLOBAL_BATCH = "train.batch_size x processes"
# The profiler's labels of a step's phases (profile.py reads them).
FORWARD, BACKWARD, CLIPPING = "step: forward", "step: backward", "step: clip"


def recipe(model: dict[str, Any], train: dict[str, Any], world_size: int) -> dict[str, Any]:
    """The dotted keys that decide what a run computes, as JSON values: every key but RESUMABLE's."""
    flat = {f"model.{key}": value for key, value in model.items()} | {f"train.{key}": value for key, value in train.items()}
    flat[GLOBAL_BATCH] = flat.pop("train.batch_size") * world_size
    flat["train.global_negatives"] = flat["train.global_negatives"] or world_size == 1
    resumable = RESUMABLE if train["lr_decay"] == "none" else RESUMABLE - {"train.epochs"}  # decay ends at the last epoch
    return {key: value for key, value in json.loads(json.dumps(flat)).items() if key not in resumable}


def check_recipe(out: Path, record: dict[str, Any]) -> None:
    """InputError listing every key whose value would change the result of the run in `out` if it resumed with `record`."""
    fix = f"Delete {out} to train again, or restore its {CONFIG}."
    ran, given = (recipe(r["model"], r["train"], r["world_size"]) for r in (read_run_config(out, fix), record))
    changed = [
        f"{key}: {ran.get(key)!r} -> {given.get(key)!r}" for key in sorted(ran.keys() | given.keys()) if ran.get(key) != given.get(key)
    ]
    if changed:
        raise InputError(
            f"{out / CONFIG}: --resume with values that change the run's result ({'; '.join(changed)}). "
            "Resume with the run's values, or train in a new --out folder."
        )


def validate(model: Recommender, task: RankingTask, config: TrainConfig) -> dict[str, float]:
    """Full-ranking Recall/NDCG@selection_k on the valid target, with the evaluator's code.

    Under torchrun each rank ranks its share of the users and the ranks are gathered:
    the metric is the single-process one, not an average of per-rank averages.
    """
    ranker = inference_model(model, config.precision)
    by = {"ensemble": list(model.branches)}
    ranks = rank_task(
        ranker,
        task.share(*distributed.rank_and_world()),
        item_embeddings(ranker),
        by,
        config.eval_users_per_batch,
        config.eval_items_per_batch,
    )
    return ranking_metrics(distributed.gather_rows(ranks["ensemble"]), (config.selection_k,))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Dropout's seed for one epoch on one rank: resuming needs no saved RNG, and ranks draw different masks."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def train(
    processed: Path,
    features: Path,
    out: Path,
    model_config: ModelConfig,
    config: TrainConfig,
    resume: bool = False,
    on_sequences: Callable[[int], None] = lambda n: None,
) -> list[dict[str, Any]]:
    """Train a model on processed/ and features/, writing config.json, the best and last checkpoints and
    train_log.tsv to `out`.

    Under torchrun, call it on every rank; `on_sequences(n)` (progress) is called on rank 0 only.
    """
    if (out / LAST).exists() and not resume:
        raise InputError(f"{out}: already holds a run. Pass --resume to continue it, or delete the folder to start over.")
    if resume and not (out / LAST).exists():
        raise InputError(f"{out / LAST}: nothing to resume. Run without --resume to start.")
    set_up_cpu_process(config.cpu_threads)
    device = resolve_device(config.device)
    distributed.join(device)
    rank, world_size = distributed.rank_and_world()
    record = {
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(config),
        "processed": str(processed),
        "features": str(features),
        "world_size": world_size,
    }
    if resume:
        check_recipe(out, record)
    seed_everything(config.seed)  # the same initial weights on every rank
    items, sequences = read_processed(processed)
    if config.selection_k > items.num_rows:
        raise InputError(
            f"train.selection_k: k = {config.selection_k} is larger than the {items.num_rows} items of "
            f"{processed}. Lower it in params.yaml (or -S train.selection_k=10)."
        )
    item_features = load_item_features(processed, features, device, config.item_features)
    model = build_model(model_config, item_features).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = gradient_scaler(device, config)
    train_sequences = training_sequences(sequences, model_config.positions, config.instances).to(device)  # a few MB, copied once
    valid = validation_task(sequences, model_config.positions)
    identities = feature_identities(features)
    k = config.selection_k
    leader = rank == 0
    objective = training_objective(config)
    steps_per_epoch = len(epoch_batches(len(train_sequences), config.batch_size, config.seed, 1, rank, world_size))
    total_steps = check_schedule(config, steps_per_epoch)

    first_epoch, best, stale, rows, timings = 1, -1.0, 0, [], []
    if resume:
        fix = f"Delete {out} to train again, or restore the file."
        tensors, state = load_checkpoint(out / LAST, fix, LAST_VALUES)
        check_features(state["features"], features, out / LAST)
        load_weights(model, tensors, out / LAST, fix)
        optimizer.load_state_dict(join_optimizer(tensors, state["optimizer"]))
        first_epoch, best, stale, rows = state["epoch"] + 1, state["best"], state["stale"], state["log"]
        if (out / TIMING).is_file():
            timings = [row | {"epoch": int(row["epoch"])} for row in read_tsv(out / TIMING, "odmt train") if row["epoch"] < first_epoch]
    step = model if world_size == 1 else DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if leader:
        write_json(out / CONFIG, record | {"complete": False})

    for epoch in range(first_epoch, config.epochs + 1):
        if stale >= config.patience and epoch > model.rampup_epochs:  # no early stop before a ramp-up ends
            log.info("early stop: valid Recall@%d did not improve for %d epochs", k, stale)
            break
        # Sums stay on the device, in float64, until the epoch ends: one read per epoch, not one per step.
        start, sums = time.perf_counter(), defaultdict[str, torch.Tensor](lambda: torch.zeros((), dtype=torch.float64, device=device))
        torch.manual_seed(epoch_seed(config.seed, epoch, rank))
        model.train()
        batches = epoch_batches(len(train_sequences), config.batch_size, config.seed, epoch, rank, world_size)
        for i, batch in enumerate(batches):
            rate = learning_rate_at((epoch - 1) * steps_per_epoch + i, total_steps, config)
            if device.type == "cuda":  # a pinned index copies without waiting for the device
                batch = batch.pin_memory().to(device, non_blocking=True)
            parts, targets = training_step(step, optimizer, scaler, train_sequences[batch], epoch, objective, rate, config)
            for name, value in parts.items():  # parts are means over the batch's targets: weigh by them
                sums[name] += value.double() * targets
            sums["targets"] += targets
            sums["sequences"] += len(batch)
            if leader:
                on_sequences(len(batch) * world_size)
        train_seconds = time.perf_counter() - start
        totals = dict(zip(sums, distributed.sum_over_ranks(torch.stack(list(sums.values()))).tolist()))
        if not all(map(math.isfinite, totals.values())):
            raise InputError(
                f"{out}: the training loss of epoch {epoch} is not finite, so nothing of that epoch was "
                "saved. Train again in a new folder with a lower train.learning_rate (or more "
                f"train.warmup_steps), after checking {features} for NaN or infinite values."
            )
        metrics = validate(model, valid, config)
        weights = checkpoint_tensors(model)
        plain = {"model_config": dataclasses.asdict(model_config), "features": identities, "epoch": epoch}
        trained, targets = totals.pop("sequences"), totals.pop("targets")
        row = {"epoch": epoch} | {name: total / targets for name, total in totals.items()}
        row |= {f"valid_{name}": value for name, value in metrics.items()}
        rows.append(row)
        row["diverged"] = int(diverged(rows, config.divergence_epochs))
        if row["diverged"] and not already_diverged(rows[:-1]):
            log.warning(
                "epoch %d: the training loss (CE terms) rose %d epochs in a row: the run diverged. Lower "
                "train.learning_rate or raise train.warmup_steps (docs/training.md: training stability)",
                epoch,
                config.divergence_epochs,
            )
        timing = {"epoch": epoch, "sequences_per_s": trained / train_seconds, "seconds": time.perf_counter() - start}
        timings.append(timing)
        if metrics[f"recall@{k}"] > best:
            best, stale = metrics[f"recall@{k}"], 0
            if leader:
                save_checkpoint(out / BEST, weights, plain | {"valid": metrics})
        else:
            stale += 1
        if leader:
            optimizer_tensors, optimizer_values = split_optimizer(optimizer.state_dict())
            save_checkpoint(
                out / LAST, weights | optimizer_tensors, plain | {"best": best, "stale": stale, "log": rows, "optimizer": optimizer_values}
            )
            write_tsv(out / LOG, rows)
            write_tsv(out / TIMING, timings)
        log.info(
            "epoch %d: loss %.4f, valid Recall@%d %.4f, NDCG@%d %.4f, %.0f sequences/s, %.1f s",
            epoch,
            row["total"],
            k,
            metrics[f"recall@{k}"],
            k,
            metrics[f"ndcg@{k}"],
            timing["sequences_per_s"],
            timing["seconds"],
        )
    if leader:
        write_json(out / CONFIG, record | {"complete": True})
    distributed.barrier()  # every rank returns once rank 0's last checkpoint is on disk
    return rows


def training_objective(config: TrainConfig) -> Objective:
    return Objective(config.loss, config.popularity_correction, config.global_negatives, config.instances == "prefixes")


def gradient_scaler(device: torch.device, config: TrainConfig) -> torch.amp.GradScaler:
    """Loss scaling for fp16 on CUDA, whose gradients underflow; bf16 and fp32 need none (a no-op scaler)."""
    return torch.amp.GradScaler(enabled=device.type == "cuda" and config.precision == "fp16")


def training_step(
    step: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    sequences: torch.Tensor,
    epoch: int,
    objective: Objective,
    learning_rate: float,
    config: TrainConfig,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step on sequences (B, L + 1) -> (the loss's parts, the number of targets), both on the device.

    Nothing here reads a value back to the host (tests/test_training.py counts): on CUDA
    the host queues the next step while the device computes this one.
    """
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    with autocast(sequences.device, config.precision, bf16_on_cpu=True), record_function(FORWARD):
        loss, parts, targets = batch_loss(step, sequences, epoch, objective)
    optimizer.zero_grad(set_to_none=True)
    with record_function(BACKWARD):
        scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    with record_function(CLIPPING):
        torch.nn.utils.clip_grad_norm_(step.parameters(), config.gradient_clip)
    scaler.step(optimizer)
    scaler.update()
    return parts, targets


def batch_loss(
    step: torch.nn.Module, sequences: torch.Tensor, epoch: int, objective: Objective
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """The model's loss on this rank's batch (B, L + 1), its logged parts, and the batch's number of targets (on the device).

    With global negatives across ranks the loss is weighted by this rank's share of the
    global batch's targets: DDP averages gradients over ranks, and the average of the
    weighted losses is the mean over every target, as one process on the whole batch has it.
    """
    shared = objective.global_negatives and not objective.full_softmax and distributed.active()
    loss, parts = step(sequences, epoch, objective)
    targets = target_positions(sequences, objective.last_position_only).sum()
    if shared:
        loss = loss * distributed.rank_and_world()[1] * targets / distributed.sum_over_ranks(targets)
    return loss, parts, targets
