"""The ID-only sequential baselines of the paper's Table 2 (SASRec, GRU4Rec, NextItNet).

A learned embedding per item ID and one backbone over it, trained and ranked by the
same code as ODMT: the debiased in-batch loss (eq. 5-6), the same loop, the same
evaluator. `model.name` picks the backbone; the feature store is read only for the
catalogue size and the popularity correction.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import torch
from torch import nn

from pipeline.features.items import ItemFeatures
from pipeline.models.base import Recommender, id_table, user_encoder
from pipeline.models.config import Backbone, ModelConfig


class IDOnly(Recommender):
    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        self.config, self.features = config, features
        self.branches = ("id",)
        # Initialisation, in this order: the ID table normal(0, initializer_range), then the backbone's layers.
        self.item_embeddings = id_table(features.items, config)
        self.user_encoders = nn.ModuleDict({"id": user_encoder(replace(config, user_encoder=cast(Backbone, config.name)))})

    @property
    def dtype(self) -> torch.dtype:
        return self.item_embeddings.weight.dtype

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings(sequences)}

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings.weight}

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{"id": (N + 1, d)}, row 0 (padding) zeros."""
        return {"id": self.item_embeddings.weight.detach()}
