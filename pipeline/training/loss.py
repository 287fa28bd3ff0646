"""Paper 3.4 (debiased in-batch loss, eq. 5-6) and 3.5 (online distillation, eq. 7-9).

Every non-padding position of every sequence in the batch is a training target, and
the targets of the whole batch are the candidates: row r's softmax runs over all R
target slots, the true column being r. Scores are corrected by -log(popularity) from
the training part, and a column whose item occurs anywhere in row r's own sequence is
masked (a false negative), except the true column itself.

With `global_negatives` under torchrun, the other ranks' targets are appended as
columns (gradients flow back to the rank that encoded them), so N processes score
against the candidates of one N-times-larger batch; a rank's own columns come first,
so row r's true column stays r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline import distributed

# The authors' masked logit: finite, so KL terms stay defined, and exp() of it is 0 even after /T.
MASKED_LOGIT = -1e4


@dataclass(frozen=True)
class InBatchCandidates:
    """Where the targets of a batch are and which of them each row may not score against."""

    rows: torch.Tensor  # (B, L) bool: positions whose input and target are real items
    popularity_correction: torch.Tensor  # (C,) -log(pop) of each candidate column (C = R, or more when shared)
    masked: torch.Tensor  # (R, C) bool: a false negative (column's item is in the row's sequence, not its true
    #                       column) or another rank's padding
    shared_rows: int | None = None  # global negatives: every rank's targets padded to this many, the others' appended


def target_positions(sequences: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: positions of sequences (B, L + 1) that are trained on; a target needs an item before it."""
    return (sequences[:, :-1] != 0) & (sequences[:, 1:] != 0)


def in_batch_candidates(sequences: torch.Tensor, popularity: torch.Tensor, global_negatives: bool = False) -> InBatchCandidates:
    """sequences (B, L + 1) item ids, left-padded with 0; popularity (N + 1,) training-part counts.

    `global_negatives` takes effect only under torchrun with more than one process.
    """
    rows = target_positions(sequences)
    target_items = sequences[:, 1:][rows]  # (R,)
    columns, shared_rows = target_items, None
    if global_negatives and distributed.active():
        shared_rows = distributed.max_over_ranks(len(target_items))
        columns = torch.cat([target_items, distributed.other_ranks_rows(target_items, shared_rows)])  # 0: padding
    users = torch.arange(len(sequences), device=sequences.device).unsqueeze(1).expand_as(rows)[rows]  # (R,)
    user_has_item = (sequences.unsqueeze(2) == columns.view(1, 1, -1)).any(dim=1)  # (B, C)
    own = torch.eye(len(target_items), len(columns), dtype=torch.bool, device=sequences.device)
    return InBatchCandidates(
        rows=rows,
        popularity_correction=-torch.log(popularity[columns].float()),
        masked=(user_has_item[users] | (columns == 0)) & ~own,
        shared_rows=shared_rows,
    )


def debiased_logits(users: torch.Tensor, items: torch.Tensor, candidates: InBatchCandidates) -> torch.Tensor:
    """s(H, D) = H . D - log pop(D) (eq. 6) for users (R, d) against target items (R, d), masked columns masked.

    With global negatives the other ranks' target items join `items` as columns.
    """
    if candidates.shared_rows is not None:
        items = torch.cat([items, distributed.other_ranks_rows(items, candidates.shared_rows)])
    logits = users @ items.T + candidates.popularity_correction  # (R, C)
    return logits.float().masked_fill(candidates.masked, MASKED_LOGIT)


def cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Eq. 5/8: row r's true candidate is column r."""
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


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


def distillation_terms(
    logits: dict[str, torch.Tensor], temperature: float, detach_teacher: bool
) -> dict[str, torch.Tensor]:
    """Eq. 9: the ID branch teaches image and text, the ensemble teaches the ID branch.

    Without an ID branch (ID-free ODMT) the ensemble teaches every branch.
    """
    ensemble = torch.stack(list(logits.values())).mean(dim=0)
    teacher_of = {"image": "id", "text": "id", "id": "ensemble"} if "id" in logits else dict.fromkeys(logits, "ensemble")
    teachers = logits | {"ensemble": ensemble}
    return {
        branch: distillation_kl(teachers[teacher_of[branch]], logits[branch], temperature, detach_teacher)
        for branch in logits
    }


def rampup_weight(epoch: int, alpha: float) -> float:
    """w = exp(-5 (1 - min(epoch, alpha) / alpha)^2), epochs counted from 1; a constant alpha when alpha < 1."""
    if alpha < 1:
        return alpha
    return math.exp(-5 * (1 - min(epoch, alpha) / alpha) ** 2)
