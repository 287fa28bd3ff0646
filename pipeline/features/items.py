"""Every item's frozen features as the models read them (paper eq. 1): loaded from the feature store,
checked against the processed items they were extracted from, and optionally standardised.

Models index them per batch (`features.image[items]`), so a catalogue on disk is read
row by row and never copied whole unless asked (`train.item_features: memory`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.dataset.processed import read_processed
from pipeline.errors import InputError
from pipeline.features.store import Manifest, ShardedTokens
from pipeline.runtime import FeatureStorage


class Tokens(Protocol):
    """One modality's frozen tokens, (N + 1, L, d) float16: a tensor, or a store read per batch (ShardedTokens).

    Models only index them with a tensor of item ids, optionally with a token index.
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def device(self) -> torch.device: ...

    def __getitem__(self, index: Any) -> torch.Tensor: ...

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> Tokens: ...


@dataclass
class ItemFeatures:
    """Frozen token features of every item (eq. 1), row 0 = padding; indexed per batch."""

    image: Tokens  # (N + 1, L_v, d_v) float16, CLS first
    text: Tokens  # (N + 1, L_t, d_t) float16, CLS first
    text_mask: torch.Tensor  # (N + 1, L_t) bool, True on real tokens
    popularity: torch.Tensor  # (N + 1,) training-part counts, at least 1

    def to(self, device: torch.device) -> ItemFeatures:
        return ItemFeatures(self.image.to(device), self.text.to(device), self.text_mask.to(device), self.popularity.to(device))

    @property
    def items(self) -> int:
        return len(self.image) - 1

    def standardized(self) -> ItemFeatures:
        """The same features with each token dimension centred and scaled over the catalogue (see `Standardized`)."""
        return ItemFeatures(Standardized(self.image, None), Standardized(self.text, self.text_mask), self.text_mask, self.popularity)


class Standardized:
    """Tokens with each feature dimension centred and scaled to unit variance over the catalogue's real tokens;
    padding stays 0. Applied as rows are read, so a catalogue on disk is never copied.

    A frozen encoder's tokens share a large mean (hm-sample's image CLS: norm 44, of
    which 24 is the catalogue's mean). The softmax cannot see a part every item shares,
    so nothing holds it back: it grew until bf16 logits could no longer resolve one
    item from another, and training diverged (docs/training.md: why ODMT standardises its features). This affine
    map can be folded into the projection W^m E^m + b^m, so the model is the paper's;
    only its starting point and conditioning change. Statistics in float64, in chunks
    of 512 items (79 MB of float64 at 50 tokens x 384 dims; 4,096 took 1.5 GB), so a
    paper-sized catalogue is never copied at once.
    """

    def __init__(self, tokens: Tokens, mask: torch.Tensor | None, chunk: int = 512) -> None:
        self.tokens = tokens
        self.mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device) if mask is None else mask
        self.shape, self.device = tokens.shape, tokens.device
        total = torch.zeros(tokens.shape[2], dtype=torch.float64, device=tokens.device)
        squares, count = torch.zeros_like(total), 0
        for start in range(0, len(tokens), chunk):
            items = torch.arange(start, min(start + chunk, len(tokens)), device=tokens.device)
            values = tokens[items][self.real(items, slice(None))].double()
            total, squares, count = total + values.sum(dim=0), squares + values.square().sum(dim=0), count + len(values)
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant dimension becomes 0
        self.mean, self.std = mean.float(), std.float()

    def real(self, items: torch.Tensor, token: int | slice) -> torch.Tensor:
        """Which of the indexed tokens are real: the mask's, never the padding item's."""
        real = self.mask[items, token]
        return real & (items != 0).view(*items.shape, *[1] * (real.dim() - items.dim()))

    def __getitem__(self, index: torch.Tensor | tuple[torch.Tensor, int | slice]) -> torch.Tensor:
        items, token = index if isinstance(index, tuple) else (index, slice(None))
        values = self.tokens[items, token]
        return ((values.float() - self.mean) / self.std * self.real(items, token).unsqueeze(-1)).to(values.dtype)

    def __len__(self) -> int:
        return len(self.tokens)

    def to(self, device: torch.device) -> Standardized:
        moved = copy.copy(self)
        moved.tokens, moved.device = self.tokens.to(device), device
        moved.mask, moved.mean, moved.std = self.mask.to(device), self.mean.to(device), self.std.to(device)
        return moved


def load_item_features(
    processed: Path, features: Path, device: torch.device = torch.device("cpu"), storage: FeatureStorage = "auto"
) -> ItemFeatures:
    """Every item's frozen features on `device`, checked against the processed items they were extracted from.

    Read per batch from the shards (`storage` shards, auto on CPU: memory stays bounded
    at any catalogue size), or loaded whole (memory, auto on CUDA).
    """
    items, _ = read_processed(processed)
    image, text = ShardedTokens(features / "image", items), ShardedTokens(features / "text", items)
    text_mask = text.mask
    if text_mask is None:  # only a text store's shards hold a mask
        raise InputError(
            f"{features / 'text'}: holds image features, not text (its manifest's modality). Pass the "
            "features folder written by `odmt extract`, whose text/ holds the text store."
        )
    counts = np.concatenate([[1], items["train_count"].to_numpy()]).clip(min=1)  # log(pop) defined everywhere
    loaded = ItemFeatures(image, text, text_mask, torch.from_numpy(counts))
    if storage == "memory" or (storage == "auto" and device.type == "cuda"):
        loaded = ItemFeatures(image.load(), text.load(), text_mask, loaded.popularity)
    return loaded.to(device)


def feature_identities(features: Path) -> dict[str, dict[str, Any]]:
    """What built each feature store (encoder, weights, items): recorded in checkpoints, checked on loading.

    A missing store is an error of its own, not a difference from the one a run was trained on.
    """
    identities = {}
    for modality in ("image", "text"):
        manifest = Manifest.read(features / modality)
        if manifest is None:
            raise InputError(
                f"{features / modality}: missing (no feature store). Pass the features folder written by `odmt extract`, or run it."
            )
        identities[modality] = dataclasses.asdict(manifest.identity)
    return identities
