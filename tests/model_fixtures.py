"""Small random models and feature stores for the model and training tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from pipeline.features.store import FeatureIdentity, Manifest, items_fingerprint, shard_name, write_shard
from pipeline.models.config import ModelConfig
from pipeline.models.odmt import ItemFeatures

TINY = ModelConfig(hidden_size=16, imt_heads=2, user_heads=2, positions=6, dropout=0.1)


def random_features(items: int, seed: int = 0, width: int = 8, image_tokens: int = 5, text_tokens: int = 4) -> ItemFeatures:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(items + 1, image_tokens, width, generator=generator).half()
    text = torch.randn(items + 1, text_tokens, width, generator=generator).half()
    mask = torch.ones(items + 1, text_tokens, dtype=torch.bool)
    mask[1::2, -1] = False  # every other item has a padded last text token
    image[0] = text[0] = 0
    popularity = torch.randint(1, 5, (items + 1,), generator=generator)
    return ItemFeatures(image, text, mask, popularity)


def write_random_store(folder: Path, modality: str, items: pa.Table, seed: int, width: int = 8, length: int = 4) -> None:
    """A complete feature store of random tokens for `items`, as `odmt extract` would lay it out."""
    rng = np.random.default_rng(seed)
    item_idx = items["item_idx"].to_numpy()
    tokens = rng.normal(size=(len(item_idx), length, width)).astype(np.float16)
    mask = np.ones((len(item_idx), length), dtype=bool) if modality == "text" else None
    write_shard(folder / shard_name(0), item_idx, tokens, mask)
    identity = FeatureIdentity(modality, "random", "none", items_fingerprint(items), width, length, "none", {}, len(item_idx))
    Manifest(identity, [{"file": shard_name(0), "items": len(item_idx)}], complete=True).write(folder)


def tiny(**changes) -> ModelConfig:
    return replace(TINY, **changes)
