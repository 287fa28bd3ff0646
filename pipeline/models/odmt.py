"""ODMT: Online Distillation-enhanced Multi-modal Transformer (Ji et al., ACM MM 2023).

Read top to bottom as the paper's section 3:
  3.2  ItemFeatures (eq. 1, precomputed by `odmt extract`, standardised per dimension), IMT
       (eq. 2), ItemHead (eq. 3), and the ID table's initialisation from the CLS features;
  3.3  one user encoder per branch (eq. 4): SASRec, or GRU4Rec / NextItNet (Figure 5);
  3.4/3.5  the debiased in-batch loss and online distillation (pipeline/training/loss.py).
Branches are "image" (v), "text" (t) and "id".
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pipeline.models.config import ModelConfig
from pipeline.models.gru4rec import GRU4Rec
from pipeline.models.nextitnet import NextItNet
from pipeline.models.sasrec import SASRec
from pipeline.models.transformer import Transformer, key_padding
from pipeline.training.loss import (
    Candidates,
    Objective,
    candidate_logits,
    candidates,
    cross_entropy,
    distillation_terms,
    rampup_weight,
)

log = logging.getLogger(__name__)


class Tokens(Protocol):
    """One modality's frozen tokens, (N + 1, L, d) float16: a tensor, or a store read per batch (ShardedTokens).

    Models only index them with a tensor of item ids, optionally with a token index.
    """

    shape: tuple[int, ...]
    device: torch.device

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
        return ItemFeatures(*(t.to(device) for t in (self.image, self.text, self.text_mask, self.popularity)))

    @property
    def items(self) -> int:
        return len(self.image) - 1

    def standardized(self) -> ItemFeatures:
        """The same features with each token dimension centred and scaled over the catalogue (see `Standardized`)."""
        return ItemFeatures(Standardized(self.image, None), Standardized(self.text, self.text_mask),
                            self.text_mask, self.popularity)


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


class ItemHead(nn.Sequential):
    """Eq. 3: D = W2 LeakyReLU(W1 E_cls + b1) + b2, one per branch."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(nn.Linear(hidden_size, hidden_size), nn.LeakyReLU(), nn.Linear(hidden_size, hidden_size))


class IMT(nn.Module):
    """ID-aware Multi-modal Transformer (eq. 2): one sequence [image tokens; ID; text tokens] per item.

    With `id_mask`, image and text queries cannot attend to the ID key while the ID
    query attends to everything, so ID embeddings cannot mislead the modality ones.
    With `imt` off ("w/o IMT"), image and text each get their own Transformer and the
    ID embedding goes straight to its head.
    """

    def __init__(self, config: ModelConfig, image_width: int, text_width: int, id_width: int | None) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.projections = nn.ModuleDict({"image": nn.Linear(image_width, d), "text": nn.Linear(text_width, d)})
        if id_width is not None:
            self.projections["id"] = nn.Linear(id_width, d)
        stack = dict(layers=config.imt_layers, hidden_size=d, heads=config.imt_heads, dropout=config.dropout,
                     layer_norm_eps=config.layer_norm_eps, norm_first=config.imt_norm == "pre")
        if config.imt:
            self.transformer = Transformer(**stack)
        else:
            self.transformers = nn.ModuleDict({"image": Transformer(**stack), "text": Transformer(**stack)})
        self.heads = nn.ModuleDict({branch: ItemHead(d) for branch in self.projections})

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, ids: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """image (n, L_v, d_v), text (n, L_t, d_t), text_mask (n, L_t), ids (n, d_id) -> {branch: D (n, d)}."""
        v, t = self.projections["image"](image), self.projections["text"](text)  # (n, L_v, d), (n, L_t, d)
        image_valid = torch.ones(v.shape[:2], dtype=torch.bool, device=v.device)
        if not self.config.imt:
            cls = {
                "image": self.transformers["image"](v, key_padding(image_valid), outputs=[0])[:, 0],
                "text": self.transformers["text"](t, key_padding(text_mask), outputs=[0])[:, 0],
            }
            if ids is not None:
                cls["id"] = self.projections["id"](ids)
            return {branch: self.heads[branch](e) for branch, e in cls.items()}

        image_length = v.shape[1]
        parts, valid = [v], [image_valid]
        if ids is not None:
            parts.append(self.projections["id"](ids).unsqueeze(1))  # (n, 1, d)
            valid.append(image_valid[:, :1])
        parts.append(t)
        valid.append(text_mask)
        allowed = key_padding(torch.cat(valid, dim=1))  # (n, S, S)
        if ids is not None and self.config.id_mask:
            blocked = torch.ones(allowed.shape[1], dtype=torch.bool, device=v.device)
            blocked[image_length] = False  # the ID query itself still sees everything
            allowed[:, blocked, image_length] = False
        read = {"image": 0, "text": image_length + (ids is not None)} | ({"id": image_length} if ids is not None else {})
        out = self.transformer(torch.cat(parts, dim=1), allowed, outputs=list(read.values()))  # (n, branches, d)
        return {branch: self.heads[branch](out[:, i]) for i, branch in enumerate(read)}


def user_encoder(config: ModelConfig) -> nn.Module:
    """One branch's backbone (eq. 4; ODMT is model-agnostic, Figure 5): items (B, L, d), valid -> H (B, L, d)."""
    d, layers = config.hidden_size, config.user_layers
    if config.user_encoder == "gru4rec":
        return GRU4Rec(d, layers, config.dropout)
    if config.user_encoder == "nextitnet":
        return NextItNet(d, layers, config.user_kernel_size, config.user_dilations, config.dropout, config.layer_norm_eps)
    return SASRec(d, layers, config.user_heads, config.positions, config.dropout, config.layer_norm_eps,
                  config.initializer_range, config.positions_from)


def training_logits(
    model: nn.Module, sequences: torch.Tensor, objective: Objective
) -> tuple[dict[str, torch.Tensor], Candidates]:
    """{branch: (R, C) logits} (eq. 5-6, or the full softmax) at the objective's target positions of `sequences`.

    sequences (B, L + 1) left-padded. The model offers `user_encoders` (one per branch),
    `sequence_item_embeddings(sequences)` and, for the full softmax, `item_catalogue()`
    (every item, with gradients): the batch's items are then looked up in the catalogue,
    so each item is still encoded once per step.
    """
    scored = candidates(sequences, model.features.popularity, objective)
    if objective.full_softmax:
        catalogue = model.item_catalogue()  # {branch: (N + 1, d)}
        items = {branch: e[sequences] for branch, e in catalogue.items()}
        columns = {branch: e[1:] for branch, e in catalogue.items()}
    else:
        items = model.sequence_item_embeddings(sequences)  # {branch: (B, L + 1, d)}
        columns = {branch: e[:, 1:][scored.rows] for branch, e in items.items()}
    valid = sequences[:, :-1] != 0
    logits = {}
    for branch, encoder in model.user_encoders.items():
        users = encoder(items[branch][:, :-1], valid)  # (B, L, d)
        logits[branch] = candidate_logits(users[scored.rows], columns[branch], scored)
    return logits, scored


def single_loss(logits: dict[str, torch.Tensor], scored: Candidates) -> tuple[torch.Tensor, dict[str, float]]:
    """One CE on one set of logits (late fusion, and every single-branch baseline), logged as ce_<name>."""
    ((name, z),) = logits.items()
    loss = cross_entropy(z, scored)
    return loss, {f"ce_{name}": loss.item(), "total": loss.item()}


def latest_user_states(
    user_encoders: nn.ModuleDict, histories: torch.Tensor, items: dict[str, torch.Tensor], dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """histories (U, L) left-padded, items {branch: (N + 1, d)} -> {branch: H (U, d)} at the last position, fp32."""
    valid = histories != 0
    return {
        b: encoder(items[b][histories].to(dtype), valid, outputs=[-1])[:, 0].float() for b, encoder in user_encoders.items()
    }


def initial_id_table(features: ItemFeatures, how: str) -> torch.Tensor:
    """ID table (N + 1, d_id) from the raw CLS features: their mean (d_v = d_t), one of them, or random.

    When d_v != d_t the mean is undefined; the paper then takes one modality: text here.
    """
    every_item = torch.arange(len(features.image), device=features.image.device)
    image_cls, text_cls = features.image[every_item, 0].float(), features.text[every_item, 0].float()
    if how == "mean" and image_cls.shape[1] != text_cls.shape[1]:
        log.warning("id_init 'mean' needs d_v == d_t (%d != %d): initialising from text", image_cls.shape[1], text_cls.shape[1])
        how = "text"
    if how == "mean":
        table = (image_cls + text_cls) / 2
    elif how == "random":
        table = nn.init.xavier_uniform_(torch.empty_like(text_cls))
    else:
        table = (text_cls if how == "text" else image_cls).clone()
    table[0] = 0  # padding
    return table


class ODMT(nn.Module):
    """Item encoder (IMT) + one user encoder per branch; training loss of eq. 5-9; full-ranking scores."""

    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        if config.standardize_features:
            features = features.standardized()
        self.config, self.features = config, features
        self.branches = ("image", "text", "id") if config.use_id else ("image", "text")
        id_table = initial_id_table(features, config.id_init) if config.use_id else None
        if id_table is not None:
            self.id_embeddings = nn.Embedding.from_pretrained(id_table, freeze=False, padding_idx=0)
        self.item_encoder = IMT(
            config, features.image.shape[2], features.text.shape[2], None if id_table is None else id_table.shape[1]
        )
        self.user_encoders = nn.ModuleDict({branch: user_encoder(config) for branch in self.branches})

    @property
    def rampup_epochs(self) -> int:
        """Epochs until the distillation weight reaches 1 (eq. 9's ramp-up): the objective changes until then,
        so early stopping waits for them (pipeline/training/loop.py)."""
        return int(self.config.alpha) if self.config.distillation and self.config.alpha >= 1 else 0

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype (float32 to train; bf16 or fp16 in an inference copy): features are cast to it."""
        return self.item_encoder.projections["image"].weight.dtype

    def encode_items(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """items (n,) ids -> {branch: D (n, d)} through the IMT.

        Text is cut after the last real token of these items: padding keys are masked
        anyway, so the outputs are identical and no compute goes to padding. With
        `recompute_items`, a training step keeps only each group of items' outputs and
        recomputes the IMT inside in the backward pass, a group at a time: the
        activations of ~1,200 items x 81 tokens x d (7 GB at d = 384) are what bound a
        paper-scale step's memory, for about one more forward pass of time.
        """
        f = self.features
        text_mask = f.text_mask[items]
        used = text_mask.any(dim=0)
        length = len(used) - int(used.flip(0).int().argmax())
        ids = self.id_embeddings(items) if self.config.use_id else None
        inputs = (f.image[items].to(self.dtype), f.text[items, :length].to(self.dtype), text_mask[:, :length], ids)
        group = self.config.recompute_items
        if not (group and torch.is_grad_enabled() and len(items) > group):
            return self.item_encoder(*inputs)
        groups = zip(*(x.split(group) if x is not None else [None] * -(-len(items) // group) for x in inputs))
        parts = [checkpoint(self.item_encoder, *part, use_reentrant=False) for part in groups]
        return {branch: torch.cat([part[branch] for part in parts]) for branch in parts[0]}

    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        """sequences (B, L) -> {branch: (B, L, d)}, each distinct item encoded once (or every slot, if not deduplicating)."""
        if self.config.deduplicate_items:
            distinct, inverse = torch.unique(sequences, return_inverse=True)
            return {branch: e[inverse] for branch, e in self.encode_items(distinct).items()}
        return {branch: e.view(*sequences.shape, -1) for branch, e in self.encode_items(sequences.flatten()).items()}

    def item_catalogue(self) -> dict[str, torch.Tensor]:
        """{branch: D (N + 1, d)} of every item through the IMT, with gradients (the full softmax's candidates)."""
        return self.encode_items(torch.arange(self.features.items + 1, device=self.features.image.device))

    def forward(
        self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """sequences (B, L + 1) left-padded; the objective's targets predict the next -> (loss, its parts)."""
        logits, scored = training_logits(self, sequences, objective)
        if not self.config.distillation:  # late fusion: one CE on the averaged logits
            return single_loss({"ensemble": torch.stack(list(logits.values())).mean(dim=0)}, scored)
        ce = {branch: cross_entropy(z, scored) for branch, z in logits.items()}
        kl = distillation_terms(logits, self.config.temperature, self.config.detach_teacher)
        weight = rampup_weight(epoch, self.config.alpha)
        loss = sum(ce.values()) + weight * sum(kl.values())
        parts = {f"ce_{b}": v.item() for b, v in ce.items()} | {f"kl_{b}": v.item() for b, v in kl.items()}
        return loss, parts | {"distillation_weight": weight, "total": loss.item()}

    @torch.no_grad()
    def all_item_embeddings(self, chunk: int = 1024) -> dict[str, torch.Tensor]:
        """{branch: (N + 1, d)} for every item, each encoded once; row 0 (padding) is zeros."""
        device = self.features.image.device
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for start in range(1, self.features.items + 1, chunk):
            items = torch.arange(start, min(start + chunk, self.features.items + 1), device=device)
            for branch, e in self.encode_items(items).items():
                parts[branch].append(e.float())
        return {b: torch.cat([torch.zeros_like(p[0][:1]), *p]) for b, p in parts.items()}

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """histories (U, L) left-padded, items {branch: (N + 1, d)} -> {branch: H (U, d)} at the last position."""
        return latest_user_states(self.user_encoders, histories, items, self.dtype)
