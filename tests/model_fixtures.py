"""Small random models and item features for the model and training tests."""

from __future__ import annotations

from dataclasses import replace

import torch

from pipeline.features.items import ItemFeatures
from pipeline.models.config import ModelConfig

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


def tiny(**changes) -> ModelConfig:
    return replace(TINY, **changes)
