"""The interface every model offers, declared once, and the building blocks the models share.

`Ranker` is what the evaluator ranks with (pipeline/evaluation/ranking.py): item and user
embeddings per branch, scored by `Ranker.score`, the one place branch scores combine.
Every model, the popularity ranking and a RecBole peer rank through it, so they are
compared under one protocol. `Recommender` is a Ranker the training loop (training/loop.py)
trains: its forward is the loss of a batch.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from pipeline.features.items import ItemFeatures
from pipeline.models.config import ModelConfig
from pipeline.models.gru4rec import GRU4Rec
from pipeline.models.nextitnet import NextItNet
from pipeline.models.objective import Candidates, Objective, TrainingLoss, candidate_logits, candidates, cross_entropy
from pipeline.models.sasrec import SASRec


class Ranker(abc.ABC):
    """Anything that ranks every item for a user: a score per branch, H . D, whatever computes H and D."""

    branches: tuple[str, ...]  # the spaces users and items meet in (ODMT: image, text, id), in scoring order

    @abc.abstractmethod
    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{branch: D (N + 1, d)} of every item, each encoded once; row 0 (padding) is zeros."""

    @abc.abstractmethod
    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """histories (U, L) left-padded item ids, items {branch: (N + 1, d)} from all_item_embeddings
        -> {branch: H (U, d)}: each user as of their latest item."""

    @staticmethod
    def score(
        users: Mapping[str, torch.Tensor],
        items: Mapping[str, torch.Tensor],
        scorers: Mapping[str, Sequence[str]],
        paired: bool = False,
    ) -> dict[str, torch.Tensor]:
        """{scorer: its scores}, a scorer's score being the mean over its branches of H . D, in fp32.

        users {branch: H (U, d)}; items {branch: D (C, d)}, a block of the catalogue: every
        user against every item, (U, C). `paired`: items (U, d), user u against item u alone
        (each user's target), (U,). Each branch's dot products are computed once for every
        scorer that reads them; a one-branch scorer's score is that tensor itself, no copy.
        Static, so the evaluator combines every ranker's branches the same way.
        """
        needed = dict.fromkeys(branch for branches in scorers.values() for branch in branches)
        if paired:
            dots = {b: (users[b].float() * items[b].float()).sum(dim=1) for b in needed}
        else:
            dots = {b: users[b].float() @ items[b].float().T for b in needed}
        return {name: mean([dots[b] for b in branches]) for name, branches in scorers.items()}


def mean(scores: list[torch.Tensor]) -> torch.Tensor:
    """The mean of branch scores (one branch: itself, no copy).

    Summed into one new tensor in place: a block of scores is 64 MB at the default
    1024 users x 16384 items, and `sum(...) / n` would hold two more of them.
    """
    if len(scores) == 1:
        return scores[0]
    total = scores[0] + scores[1]
    for score in scores[2:]:
        total += score
    return total.div_(len(scores))


class Recommender(Ranker, nn.Module):
    """A trainable model: its forward is the loss of a batch under the shared objective, it ranks as a Ranker.

    The default forward is one cross-entropy over the logits of one user encoder per
    branch (`training_logits`); a model with another loss (ODMT's distillation) or other
    user states (FDSA's two streams) overrides it.
    """

    config: ModelConfig
    features: ItemFeatures  # frozen, shared by inference copies (pipeline/evaluation/ranking.py)
    user_encoders: nn.ModuleDict  # one per branch (eq. 4), read by the default forward and user_embeddings
    # Epochs until the objective stops changing (ODMT's distillation ramp-up): early stopping waits for them.
    rampup_epochs: int = 0

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """The weights' dtype (float32 to train; bf16 or fp16 in an inference copy): features are cast to it."""

    @abc.abstractmethod
    def sequence_item_embeddings(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        """sequences (B, L) item ids -> {branch: (B, L, d)}, with gradients: a batch's items as users read them."""

    @abc.abstractmethod
    def item_catalogue(self) -> dict[str, torch.Tensor]:
        """{branch: (N + 1, d)} of every item, with gradients: the full softmax's candidates."""

    def forward(self, sequences: torch.Tensor, epoch: int, objective: Objective = Objective()) -> TrainingLoss:
        """sequences (B, L + 1) left-padded; the objective's targets predict the next -> (loss, its logged parts).

        The parts stay on the device (detached scalars): the loop sums them there and reads them once an epoch.
        """
        return single_loss(*self.training_logits(sequences, objective))

    def training_logits(self, sequences: torch.Tensor, objective: Objective) -> tuple[dict[str, torch.Tensor], Candidates]:
        """{branch: (R, C) logits} (eq. 5-6, or the full softmax) at the objective's target positions of `sequences`.

        sequences (B, L + 1) left-padded. For the full softmax the batch's items are looked
        up in the catalogue, so each item is still encoded once per step.
        """
        scored = candidates(sequences, self.features.popularity, objective)
        if objective.full_softmax:
            catalogue = self.item_catalogue()  # {branch: (N + 1, d)}
            items = {branch: e[sequences] for branch, e in catalogue.items()}
            columns = {branch: e[1:] for branch, e in catalogue.items()}
        else:
            items = self.sequence_item_embeddings(sequences)  # {branch: (B, L + 1, d)}
            columns = {branch: e[:, 1:][scored.rows] for branch, e in items.items()}
        valid = sequences[:, :-1] != 0
        logits = {}
        for branch, encoder in self.user_encoders.items():
            users = encoder(items[branch][:, :-1], valid)  # (B, L, d)
            logits[branch] = candidate_logits(users[scored.rows], columns[branch], scored)
        return logits, scored

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """histories (U, L) left-padded, items {branch: (N + 1, d)} -> {branch: H (U, d)} at the last position, fp32."""
        valid = histories != 0
        return {
            b: encoder(items[b][histories].to(self.dtype), valid, outputs=[-1])[:, 0].float() for b, encoder in self.user_encoders.items()
        }


def single_loss(logits: dict[str, torch.Tensor], scored: Candidates) -> TrainingLoss:
    """One CE on one set of logits (late fusion, and every single-branch model), logged as ce_<name>."""
    ((name, z),) = logits.items()
    loss = cross_entropy(z, scored)
    return loss, {f"ce_{name}": loss.detach(), "total": loss.detach()}


def user_encoder(config: ModelConfig) -> nn.Module:
    """One branch's backbone (eq. 4; ODMT is model-agnostic, Figure 5): items (B, L, d), valid -> H (B, L, d).

    SASRec initialises its own position table (normal(0, initializer_range)); GRU4Rec and
    NextItNet have none, and their layers keep PyTorch's initialisation.
    """
    d, layers = config.hidden_size, config.user_layers
    if config.user_encoder == "gru4rec":
        return GRU4Rec(d, layers, config.dropout)
    if config.user_encoder == "nextitnet":
        return NextItNet(d, layers, config.user_kernel_size, config.user_dilations, config.dropout, config.layer_norm_eps)
    return SASRec(
        d,
        layers,
        config.user_heads,
        config.positions,
        config.dropout,
        config.layer_norm_eps,
        config.initializer_range,
        config.positions_from,
    )


def id_table(items: int, config: ModelConfig) -> nn.Embedding:
    """A learned embedding per item ID (row 0 = padding, zeros), RecBole-initialised: normal(0, initializer_range).

    Never nn.Embedding's normal(0, 1): at that scale the ID swamps everything it is added
    to or compared with (docs/model.md: initialisation and sizes).
    """
    table = nn.Embedding(items + 1, config.hidden_size, padding_idx=0)
    nn.init.normal_(table.weight, std=config.initializer_range)
    with torch.no_grad():
        table.weight[0] = 0
    return table
