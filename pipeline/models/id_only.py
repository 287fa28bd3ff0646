"""The ID-only sequential baselines of the paper's Table 2 (SASRec, GRU4Rec, NextItNet).

A learned embedding per item ID and one backbone over it, trained and ranked by the
same code as ODMT: the debiased in-batch loss (eq. 5-6), the same loop, the same
evaluator. `model.name` picks the backbone; the feature store is read only for the
catalogue size and the popularity correction.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pipeline.models.config import ModelConfig
from pipeline.models.odmt import ItemFeatures, latest_user_states, single_loss, training_logits, user_encoder
from pipeline.training.loss import Objective


def id_table(items: int, config: ModelConfig) -> nn.Embedding:
    """A learned embedding per item ID (row 0 = padding, zeros), RecBole-initialised: normal(0, initializer_range)."""
    table = nn.Embedding(items + 1, config.hidden_size, padding_idx=0)
    nn.init.normal_(table.weight, std=config.initializer_range)
    with torch.no_grad():
        table.weight[0] = 0
    return table


class IDOnly(nn.Module):
    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        self.config, self.features = config, features
        self.branches = ("id",)
        self.item_embeddings = id_table(features.items, config)
        self.user_encoders = nn.ModuleDict({"id": user_encoder(replace(config, user_encoder=config.name))})

    @property
    def dtype(self) -> torch.dtype:
        return self.item_embeddings.weight.dtype

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings(sequences)}

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings.weight}

    def forward(
        self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """sequences (B, L + 1) left-padded; the objective's targets predict the next -> (loss, its parts)."""
        return single_loss(*training_logits(self, sequences, objective))

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{"id": (N + 1, d)}, row 0 (padding) zeros."""
        return {"id": self.item_embeddings.weight.detach()}

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return latest_user_states(self.user_encoders, histories, items, self.dtype)
