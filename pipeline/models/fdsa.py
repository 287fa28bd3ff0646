"""FDSA (Zhang et al., 2019), a multi-modal baseline of Table 2: two self-attention streams.

The item stream runs over ID embeddings; the feature stream over each item's features,
here its image and text CLS tokens, projected to d and combined by vanilla attention
over the two fields. The last states of both streams are concatenated and projected to
the user state, which scores ID embeddings, with the shared debiased in-batch loss.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from pipeline.features.items import ItemFeatures
from pipeline.models.base import Recommender, id_table, single_loss, user_encoder
from pipeline.models.config import ModelConfig
from pipeline.models.objective import Objective, TrainingLoss, candidate_logits, candidates


class FDSA(Recommender):
    """The user state is its two streams' last states, fused: FDSA overrides forward and user_embeddings."""

    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        self.config, self.features = config, features
        self.branches = ("id",)
        d = config.hidden_size
        # Initialisation, in this order: the ID table normal(0, initializer_range), the feature projections, the field
        # attention, the two SASRec streams (positions normal(0, initializer_range)), the fusion.
        self.item_embeddings = id_table(features.items, config)
        self.feature_projections = nn.ModuleDict(
            {"image": nn.Linear(features.image.shape[2], d), "text": nn.Linear(features.text.shape[2], d)}
        )
        self.field_attention = nn.Linear(d, 1)
        sasrec = replace(config, user_encoder="sasrec")
        self.streams = nn.ModuleDict({"item": user_encoder(sasrec), "feature": user_encoder(sasrec)})
        self.fuse = nn.Linear(2 * d, d)

    @property
    def dtype(self) -> torch.dtype:
        return self.item_embeddings.weight.dtype

    def feature_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        """items (...) ids -> (..., d): the image and text CLS features, weighted by vanilla attention."""
        fields = torch.stack(
            [self.feature_projections[m](getattr(self.features, m)[items, 0].to(self.dtype)) for m in ("image", "text")],
            dim=-2,
        )  # (..., 2, d)
        return (self.field_attention(fields).softmax(dim=-2) * fields).sum(dim=-2)

    def user_states(self, sequences: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        """sequences (B, L) left-padded -> (B, L, d), or the `outputs` positions."""
        valid = sequences != 0
        item = self.streams["item"](self.item_embeddings(sequences), valid, outputs)
        feature = self.streams["feature"](self.feature_embeddings(sequences), valid, outputs)
        return self.fuse(torch.cat([item, feature], dim=-1))

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings(sequences)}

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings.weight}

    def forward(self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()) -> TrainingLoss:
        """sequences (B, L + 1) left-padded; the objective's targets predict the next -> (loss, its parts)."""
        scored = candidates(sequences, self.features.popularity, objective)
        users = self.user_states(sequences[:, :-1])[scored.rows]
        if objective.full_softmax:
            columns = self.item_catalogue()["id"][1:]  # every item
        else:
            columns = self.sequence_item_embeddings(sequences[:, 1:])["id"][scored.rows]  # the batch's targets
        return single_loss({"id": candidate_logits(users, columns, scored)}, scored)

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        return {"id": self.item_embeddings.weight.detach()}

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"id": self.user_states(histories, outputs=[-1])[:, 0].float()}
