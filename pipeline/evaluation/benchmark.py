"""Evaluation speed as the catalogue grows: items/s encoded, users/s ranked against every item, peak memory.

Features are synthetic (random tokens at the paper's shapes), so the scaling is measured
at sizes no embedded dataset has; speed does not depend on the values.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from typing import Any

import torch

from pipeline.capacity import require_memory
from pipeline.evaluation.config import EvaluateConfig
from pipeline.evaluation.ranking import RankingTask, inference_model, item_embeddings, rank_task, scorers
from pipeline.features.items import ItemFeatures
from pipeline.models.config import ModelConfig
from pipeline.models.registry import build_model
from pipeline.runtime import resolve_device, resolve_precision, set_up_cpu_process

BANK = 1024  # distinct random items, tiled: generating 100k x 80 x 384 normals would dominate the benchmark


def synthetic_features(items: int, image_tokens: int, text_tokens: int, width: int, generator: torch.Generator) -> ItemFeatures:
    """Items with random image and text tokens (float16, CLS first), text of random length, popularity 1."""
    rows = torch.arange(items + 1) % BANK
    image = torch.randn(BANK, image_tokens, width, generator=generator).half()[rows]
    text = torch.randn(BANK, text_tokens, width, generator=generator).half()[rows]
    lengths = torch.randint(2, text_tokens + 1, (BANK,), generator=generator)[rows]
    mask = torch.arange(text_tokens) < lengths.unsqueeze(1)
    image[0] = text[0] = 0
    mask[0] = False
    return ItemFeatures(image, text, mask, torch.ones(items + 1, dtype=torch.long))


def feature_bytes(items: int, image_tokens: int, text_tokens: int, width: int) -> int:
    """The bytes of synthetic_features' float16 tokens, held in memory."""
    return (items + 1) * (image_tokens + text_tokens) * width * 2


def benchmark_evaluate(
    model_config: ModelConfig,
    config: EvaluateConfig,
    item_counts: Sequence[int],
    users: int,
    image_tokens: int = 50,
    text_tokens: int = 30,
    width: int = 384,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per catalogue size: an untrained `model.name` (speed does not depend on training) ranks `users` users."""
    set_up_cpu_process(config.cpu_threads)
    device = resolve_device(config.device)
    scores = config.users_per_batch * config.items_per_batch * 4 * 4  # fp32 scores of every branch and their mean
    for items in item_counts:
        require_memory(
            feature_bytes(items, image_tokens, text_tokens, width) + scores,
            f"bench evaluate at {items} items",
            "--items (or the users/items per batch)",
        )
    rows = []
    for items in item_counts:
        generator = torch.Generator().manual_seed(seed)
        features = synthetic_features(items, image_tokens, text_tokens, width, generator)
        model = inference_model(build_model(model_config, features.to(device)).to(device), config.precision)
        histories = torch.randint(1, items + 1, (users, model_config.positions), generator=generator)
        task = RankingTask(
            histories, torch.randint(1, items + 1, (users,), generator=generator), [sorted(set(h)) for h in histories.tolist()]
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        embeddings = item_embeddings(model)
        encoded = time.perf_counter()
        rank_task(model, task, embeddings, scorers(model.branches, config.each_branch), config.users_per_batch, config.items_per_batch)
        ranked = time.perf_counter()
        rows.append(
            {
                "items": items,
                "users": users,
                "precision": resolve_precision(device, config.precision, bf16_on_cpu=True),
                "items_encoded_per_s": round(items / (encoded - start), 1),
                "users_ranked_per_s": round(users / (ranked - encoded), 1),
                "users_per_s_including_encoding": round(users / (ranked - start), 1),
                "feature_mib": round(feature_bytes(items, image_tokens, text_tokens, width) / 2**20),
                "peak_rss_mib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device.type == "cuda" else None,
            }
        )
        del model, features, embeddings
    return rows
