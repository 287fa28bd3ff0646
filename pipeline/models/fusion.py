"""The multi-modal fusion baselines of Table 2, assembled from ODMT's parts.

Both encode each modality with its own Transformer (the FST: ODMT's "w/o IMT" item
encoder) beside a randomly initialised ID embedding, and train without distillation:
  SASRec+LF  one user encoder per input, CE on the averaged logits (late fusion);
             Table 3's "w/o online distillation" is the same model with the IMT;
  SASRec+EF  the item embeddings averaged into one before a single user encoder.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pipeline.features.items import ItemFeatures
from pipeline.models.base import single_loss, user_encoder
from pipeline.models.config import ModelConfig
from pipeline.models.objective import Objective, TrainingLoss
from pipeline.models.odmt import ODMT


def baseline(config: ModelConfig) -> ModelConfig:
    """ODMT's parts as the fusion baselines use them: separate Transformers, no distillation, a random ID table."""
    return replace(config, imt=False, distillation=False, id_init="random")


def late_fusion(config: ModelConfig, features: ItemFeatures) -> ODMT:
    """SASRec+LF."""
    return ODMT(baseline(config), features)


def average(embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"fused": torch.stack(list(embeddings.values())).mean(dim=0)}


class EarlyFusion(ODMT):
    """SASRec+EF: ODMT's per-modality item encoders, their embeddings averaged, one user encoder."""

    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__(baseline(config), features)
        self.branches = ("fused",)
        # ODMT's three user encoders are drawn, then replaced: the fused one's draws follow theirs, as they always have.
        self.user_encoders = nn.ModuleDict({"fused": user_encoder(self.config)})

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        return average(super().sequence_item_embeddings(sequences))

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        return average(super().item_catalogue())

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        return average(super().all_item_embeddings())

    def forward(self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()) -> TrainingLoss:
        """One CE on the fused branch's logits, logged as ce_fused (ODMT's own forward would log an ensemble)."""
        return single_loss(*self.training_logits(sequences, objective))
