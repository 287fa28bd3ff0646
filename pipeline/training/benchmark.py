"""Training speed: sequences/s of training's own steps (`training_step`) and items/s of
full-ranking validation, with and without encoding each distinct item of a batch once."""

from __future__ import annotations

import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import Any

import torch

from pipeline.dataset.processed import read_processed
from pipeline.evaluation.ranking import inference_model, item_embeddings
from pipeline.features.items import ItemFeatures, load_item_features
from pipeline.models.base import Recommender
from pipeline.models.config import ModelConfig
from pipeline.models.registry import build_model
from pipeline.runtime import resolve_device, resolve_precision, set_up_cpu_process, synchronize
from pipeline.training.config import TrainConfig
from pipeline.training.data import training_sequences
from pipeline.training.loop import gradient_scaler, training_objective, training_step
from pipeline.training.profile import matmul_rates, profile_steps


def benchmark_train(
    processed: Path, features: Path, model_config: ModelConfig, config: TrainConfig, steps: int, distinct_items: int | None = None
) -> list[dict[str, Any]]:
    """One row per de-duplication setting: the same batches, the same model initialisation."""
    device, item_features, batches = benchmark_batches(processed, features, model_config, config, steps, distinct_items)
    rows = []
    for deduplicate in (True, False):
        torch.manual_seed(config.seed)
        model = build_model(replace(model_config, deduplicate_items=deduplicate), item_features).to(device)
        step = training_steps(model, device, config)
        syncs = device_synchronisations(step, batches[0])  # also the warm-up step, untimed
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        synchronize(device)
        train_seconds = time.perf_counter() - start
        encode_seconds = validation_seconds(model, device, config)
        rows.append(
            {
                "deduplicate_items": deduplicate,
                "precision": resolve_precision(device, config.precision, bf16_on_cpu=True),
                "distinct_items_per_batch": round(sum(len(torch.unique(b[b != 0])) for b in batches) / len(batches)),
                "item_slots_per_batch": round(sum(b.numel() for b in batches) / len(batches)),
                "device_synchronisations_per_step": syncs,
                "train_sequences_per_s": round(sum(len(b) for b in batches) / train_seconds, 2),
                "validation_items_per_s": round(item_features.items / encode_seconds, 1),
                "peak_rss_mib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
            }
        )
    return rows


def benchmark_batches(
    processed: Path, features: Path, model_config: ModelConfig, config: TrainConfig, steps: int, distinct_items: int | None
) -> tuple[torch.device, ItemFeatures, list[torch.Tensor]]:
    """The device, the item features and `steps` training batches on it: the users' first sequences, or random ones.

    With `distinct_items`, batches are drawn from that many random items instead of the
    users' sequences: the cost of a step depends on how many distinct items it encodes,
    so this compares datasets (the authors' H&M batches hold about 560).
    """
    set_up_cpu_process(config.cpu_threads)
    device = resolve_device(config.device)
    item_features = load_item_features(processed, features, device, config.item_features)
    _, sequences = read_processed(processed)
    batches = list(training_sequences(sequences, model_config.positions).split(config.batch_size)[:steps])
    if distinct_items is not None:
        generator = torch.Generator().manual_seed(config.seed)
        pool = torch.randperm(item_features.items, generator=generator)[:distinct_items] + 1
        shape = (config.batch_size, model_config.positions + 1)
        batches = [pool[torch.randint(len(pool), shape, generator=generator)] for _ in range(steps)]
    return device, item_features, [batch.to(device) for batch in batches]


def training_steps(model: torch.nn.Module, device: torch.device, config: TrainConfig) -> Callable[[torch.Tensor], Any]:
    """step(batch): one optimiser step of `model` as training takes it, with its own AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler, objective = gradient_scaler(device, config), training_objective(config)
    return partial(training_step, model, optimizer, scaler, epoch=1, objective=objective, learning_rate=config.learning_rate, config=config)


def profile_train(
    processed: Path, features: Path, model_config: ModelConfig, config: TrainConfig, steps: int, distinct_items: int | None = None
) -> dict[str, Any]:
    """Where `steps` training steps spend their time (profile.py), with the machine's own rate on their largest products."""
    device, item_features, batches = benchmark_batches(processed, features, model_config, config, steps, distinct_items)
    torch.manual_seed(config.seed)
    model = build_model(model_config, item_features).to(device)
    step = training_steps(model, device, config)
    turns = cycle(batches)
    result = profile_steps(model, lambda: step(next(turns)), len(batches))
    result["precision"] = resolve_precision(device, config.precision, bf16_on_cpu=True)
    result["matmul_gflop_per_s_in_step"] = result["matmul_gflop"] / result["matmul_ms"] * 1000
    result |= {key: round(result[key], 2) for key in ("wall_ms", "matmul_gflop", "matmul_ms", "matmul_gflop_per_s_in_step")}
    result["matmul_gflop_per_s_alone"] = matmul_rates(result.pop("matmul_shapes"), (torch.float32, torch.bfloat16))
    result["validation_encoding_ms"] = round(validation_seconds(model, device, config) * 1000, 1)
    return result


def validation_seconds(model: Recommender, device: torch.device, config: TrainConfig) -> float:
    """Seconds to encode every item once, as validation does before it ranks."""
    start = time.perf_counter()
    item_embeddings(inference_model(model, config.precision))
    synchronize(device)
    return time.perf_counter() - start


def device_synchronisations(step: Callable[[torch.Tensor], object], batch: torch.Tensor) -> int | None:
    """How often `step(batch)` made the host wait for CUDA (torch's sync debug mode); None on CPU.

    Data-dependent shapes (torch.unique of a batch's items, boolean masks of its targets)
    wait by nature; any other wait is a value read back that the step should not need.
    """
    if batch.device.type != "cuda":
        step(batch)
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(warning.message) for warning in caught)
