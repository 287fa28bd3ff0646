"""ODMT: Online Distillation-enhanced Multi-modal Transformer (Ji et al., ACM MM 2023).

Read top to bottom as the paper's section 3, branches "image" (v), "text" (t) and "id":
  3.2  the item encoder: IMT (eq. 2) over each item's frozen tokens (eq. 1, pipeline/features/items.py,
       standardised per dimension), ItemHead (eq. 3), and the ID table's initialisation from the
       CLS features;
  3.3  one user encoder per branch (eq. 4): SASRec, or GRU4Rec / NextItNet (Figure 5);
  3.4  each branch's debiased in-batch logits (eq. 5-6) under the objective every model shares
       (pipeline/models/objective.py, through Recommender.training_logits);
  3.5  online distillation (eq. 7-9): the ID branch teaches image and text, the ensemble
       teaches the ID branch, its weight ramped up over the first epochs;
and `ODMT`, which puts them together and ranks as every model does (pipeline/models/base.py).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pipeline.features.items import ItemFeatures
from pipeline.models.base import Recommender, single_loss, user_encoder
from pipeline.models.config import ModelConfig
from pipeline.models.objective import Candidates, Objective, TrainingLoss, cross_entropy
from pipeline.models.transformer import Transformer, key_padding

log = logging.getLogger(__name__)

BRANCHES = ("image", "text", "id")  # v, t and id; an ID-free ODMT (model.use_id: false) has the first two


# 3.2: the item encoder


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

        def stack() -> Transformer:
            return Transformer(
                config.imt_layers, d, config.imt_heads, config.dropout, config.layer_norm_eps, norm_first=config.imt_norm == "pre"
            )

        if config.imt:
            self.transformer = stack()
        else:
            self.transformers = nn.ModuleDict({"image": stack(), "text": stack()})
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


class ItemHead(nn.Sequential):
    """Eq. 3: D = W2 LeakyReLU(W1 E_cls + b1) + b2, one per branch."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(nn.Linear(hidden_size, hidden_size), nn.LeakyReLU(), nn.Linear(hidden_size, hidden_size))


# 3.2: the ID table's initialisation


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


# 3.3 and 3.4: one user encoder per branch, and its in-batch logits


def user_encoders(config: ModelConfig, branches: tuple[str, ...]) -> nn.ModuleDict:
    """Eq. 4: one user encoder per branch (its backbone: `model.user_encoder`), each reading that branch's item
    embeddings; their in-batch logits (eq. 5-6) are Recommender.training_logits under the shared objective."""
    return nn.ModuleDict({branch: user_encoder(config) for branch in branches})


# 3.5: online distillation


def distillation_kl(teacher: torch.Tensor, student: torch.Tensor, temperature: float, detach_teacher: bool) -> torch.Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(student / T)), averaged over rows (one term of eq. 9)."""
    if detach_teacher:
        teacher = teacher.detach()
    return temperature**2 * F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def distillation_terms(logits: dict[str, torch.Tensor], temperature: float, detach_teacher: bool) -> dict[str, torch.Tensor]:
    """Eq. 9: the ID branch teaches image and text, the ensemble teaches the ID branch.

    Without an ID branch (ID-free ODMT) the ensemble teaches every branch.
    """
    ensemble = torch.stack(list(logits.values())).mean(dim=0)
    teacher_of = {"image": "id", "text": "id", "id": "ensemble"} if "id" in logits else dict.fromkeys(logits, "ensemble")
    teachers = logits | {"ensemble": ensemble}
    return {branch: distillation_kl(teachers[teacher_of[branch]], logits[branch], temperature, detach_teacher) for branch in logits}


def rampup_weight(epoch: int, alpha: float) -> float:
    """w = exp(-5 (1 - min(epoch, alpha) / alpha)^2), epochs counted from 1; a constant alpha when alpha < 1."""
    if alpha < 1:
        return alpha
    return math.exp(-5 * (1 - min(epoch, alpha) / alpha) ** 2)


def rampup_epochs(config: ModelConfig) -> int:
    """Epochs until the distillation weight reaches 1 (eq. 9's ramp-up); 0 without distillation or a ramp-up."""
    return int(config.alpha) if config.distillation and config.alpha >= 1 else 0


def distillation_loss(logits: dict[str, torch.Tensor], scored: Candidates, epoch: int, config: ModelConfig) -> TrainingLoss:
    """Eq. 7-9: every branch's CE plus the ramped-up weight times the KL terms -> (loss, its parts, on the device)."""
    ce = {branch: cross_entropy(z, scored) for branch, z in logits.items()}
    kl = distillation_terms(logits, config.temperature, config.detach_teacher)
    weight = rampup_weight(epoch, config.alpha)
    loss = cast(torch.Tensor, sum(ce.values()) + weight * sum(kl.values()))
    parts = {f"ce_{b}": v.detach() for b, v in ce.items()} | {f"kl_{b}": v.detach() for b, v in kl.items()}
    return loss, parts | {"distillation_weight": loss.new_full((), weight, dtype=torch.float64), "total": loss.detach()}


# ODMT


class ODMT(Recommender):
    """Item encoder (IMT) + one user encoder per branch; the loss of eq. 5-9; ranked by the mean of the branch scores."""

    item_chunk = 1024  # items encoded at a time by all_item_embeddings: bounds its memory, not its result

    def __init__(self, config: ModelConfig, features: ItemFeatures) -> None:
        super().__init__()
        if config.standardize_features:
            features = features.standardized()
        self.config, self.features = config, features
        self.branches = BRANCHES if config.use_id else BRANCHES[:2]
        self.rampup_epochs = rampup_epochs(config)
        # Initialisation, in this order (it fixes the random draws): the ID table from the CLS features (or Xavier
        # when id_init is random), then the IMT's and the user encoders' layers (SASRec: positions normal(0, 0.02)).
        id_table = initial_id_table(features, config.id_init) if config.use_id else None
        if id_table is not None:
            self.id_embeddings = nn.Embedding.from_pretrained(id_table, freeze=False, padding_idx=0)
        self.item_encoder = IMT(config, features.image.shape[2], features.text.shape[2], None if id_table is None else id_table.shape[1])
        self.user_encoders = user_encoders(config, self.branches)

    @property
    def dtype(self) -> torch.dtype:
        return cast(nn.Linear, self.item_encoder.projections["image"]).weight.dtype

    def encode_items(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """items (n,) ids -> {branch: D (n, d)} through the IMT.

        On CPU, text is cut after the last real token of these items: padding keys are
        masked anyway, so the outputs are identical and no compute goes to padding. Elsewhere
        the full width is kept, since finding the cut reads a value back from the device. With
        `recompute_items`, a training step keeps only each group of items' outputs and
        recomputes the IMT inside in the backward pass, a group at a time: the
        activations of ~1,200 items x 81 tokens x d (7 GB at d = 384) are what bound a
        paper-scale step's memory, for about one more forward pass of time.
        """
        f = self.features
        text_mask = f.text_mask[items]
        length = text_mask.shape[1]
        if items.device.type == "cpu":
            used = text_mask.any(dim=0)
            length -= int(used.flip(0).int().argmax())
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

    def forward(self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()) -> TrainingLoss:
        """sequences (B, L + 1) left-padded; the objective's targets predict the next -> (loss, its parts)."""
        logits, scored = self.training_logits(sequences, objective)
        if not self.config.distillation:  # late fusion: one CE on the averaged logits
            return single_loss({"ensemble": torch.stack(list(logits.values())).mean(dim=0)}, scored)
        return distillation_loss(logits, scored, epoch, self.config)

    @torch.no_grad()
    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{branch: (N + 1, d)} for every item, each encoded once, `item_chunk` at a time; row 0 (padding) is zeros."""
        device = self.features.image.device
        parts: dict[str, list[torch.Tensor]] = defaultdict(list)
        for start in range(1, self.features.items + 1, self.item_chunk):
            items = torch.arange(start, min(start + self.item_chunk, self.features.items + 1), device=device)
            for branch, e in self.encode_items(items).items():
                parts[branch].append(e.float())
        return {b: torch.cat([torch.zeros_like(p[0][:1]), *p]) for b, p in parts.items()}
