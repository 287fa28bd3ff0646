"""UniSRec-style baseline (Hou et al., 2022) of Table 2: items represented by their features only.

Each item's text CLS feature passes a mixture-of-experts adaptor of parametric
whitening (expert k: (x - b_k) W_k, weighted by a softmax gate over x); as the paper
did for this baseline, the image CLS feature passes its own adaptor and is added. A
SASRec reads the sequence of these item representations; no ID embedding, so unseen
items are as well represented as seen ones. As in UniSRec, a user and an item are scored
by the cosine of their representations over a temperature (`model.unisrec_temperature`,
UniSRec's 0.07): raw dot products of whitened features are unbounded, and with them the
logits exploded (training losses of 14-40 where ln(candidates) is about 7) and the model
ranked below popularity.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.features.items import ItemFeatures
from pipeline.models.base import Recommender, user_encoder
from pipeline.models.config import ModelConfig


class MoEAdaptor(nn.Module):
    def __init__(self, width: int, hidden_size: int, experts: int, dropout: float) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.zeros(experts, width))  # b_k
        self.whitening = nn.ModuleList(nn.Linear(width, hidden_size, bias=False) for _ in range(experts))  # W_k
        self.gate = nn.Linear(width, experts, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., width) -> (..., d)."""
        x = self.dropout(x)
        experts = torch.stack([w(x - b) for w, b in zip(self.whitening, self.centres)], dim=-2)  # (..., K, d)
        return (self.gate(x).softmax(dim=-1).unsqueeze(-1) * experts).sum(dim=-2)


class CosineScores(nn.Module):
    """A user encoder whose states are unit vectors over a temperature: with unit item vectors, H . D = cos / T."""

    def __init__(self, encoder: nn.Module, temperature: float) -> None:
        super().__init__()
        self.encoder, self.temperature = encoder, temperature

    def forward(self, items: torch.Tensor, valid: torch.Tensor, outputs: list[int] | None = None) -> torch.Tensor:
        return F.normalize(self.encoder(items, valid, outputs), dim=-1) / self.temperature


class UniSRec(Recommender):
    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        self.config, self.features = config, features
        self.branches = ("item",)
        d, experts = config.hidden_size, config.adaptor_experts
        # Initialisation, in this order: each adaptor (centres zero, PyTorch's Linear layers), then the SASRec
        # (positions normal(0, initializer_range)). No ID table.
        self.adaptors = nn.ModuleDict(
            {
                "text": MoEAdaptor(features.text.shape[2], d, experts, config.dropout),
                "image": MoEAdaptor(features.image.shape[2], d, experts, config.dropout),
            }
        )
        sasrec = user_encoder(replace(config, user_encoder="sasrec"))
        self.user_encoders = nn.ModuleDict({"item": CosineScores(sasrec, config.unisrec_temperature)})

    @property
    def dtype(self) -> torch.dtype:
        return cast(MoEAdaptor, self.adaptors["text"]).gate.weight.dtype

    def item_representations(self, items: torch.Tensor) -> torch.Tensor:
        """items (...) ids -> (..., d): adapted text CLS plus adapted image CLS, as a unit vector."""
        f = self.features
        return F.normalize(sum(self.adaptors[m](getattr(f, m)[items, 0].to(self.dtype)) for m in ("text", "image")), dim=-1)

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"item": self.item_representations(sequences)}

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        every_item = torch.arange(self.features.items + 1, device=self.features.image.device)
        return {"item": self.item_representations(every_item)}

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{"item": (N + 1, d)}, row 0 (padding) zeros."""
        items = torch.arange(1, self.features.items + 1, device=self.features.image.device)
        embeddings = self.item_representations(items)
        return {"item": torch.cat([torch.zeros_like(embeddings[:1]), embeddings])}
