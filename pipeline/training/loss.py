"""Paper 3.4 (debiased in-batch loss, eq. 5-6) and 3.5 (online distillation, eq. 7-9).

Every non-padding position of every sequence in the batch is a training target, and
the targets of the whole batch are the candidates: row r's softmax runs over all R
target slots, the true column being r. Scores are corrected by -log(popularity) from
the training part, and a column whose item occurs anywhere in row r's own sequence is
masked (a false negative), except the true column itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The authors' masked logit: finite, so KL terms stay defined, and exp() of it is 0 even after /T.
MASKED_LOGIT = -1e4


@dataclass(frozen=True)
class InBatchCandidates:
    """Where the targets of a batch are and which of them each row may not score against."""

    rows: torch.Tensor  # (B, L) bool: positions whose input and target are real items
    popularity_correction: torch.Tensor  # (R,) -log(pop) of each target column
    false_negative: torch.Tensor  # (R, R) bool: column's item is in the row's sequence, not the true column


def in_batch_candidates(sequences: torch.Tensor, popularity: torch.Tensor) -> InBatchCandidates:
    """sequences (B, L + 1) item ids, left-padded with 0; popularity (N + 1,) training-part counts."""
    targets = sequences[:, 1:]
    rows = (sequences[:, :-1] != 0) & (targets != 0)  # a target needs at least one item before it
    target_items = targets[rows]  # (R,)
    users = torch.arange(len(sequences), device=sequences.device).unsqueeze(1).expand_as(targets)[rows]  # (R,)
    user_has_item = (sequences.unsqueeze(2) == target_items.view(1, 1, -1)).any(dim=1)  # (B, R)
    own = torch.eye(len(target_items), dtype=torch.bool, device=sequences.device)
    return InBatchCandidates(
        rows=rows,
        popularity_correction=-torch.log(popularity[target_items].float()),
        false_negative=user_has_item[users] & ~own,
    )


def debiased_logits(users: torch.Tensor, items: torch.Tensor, candidates: InBatchCandidates) -> torch.Tensor:
    """s(H, D) = H . D - log pop(D) (eq. 6) for users (R, d) against target items (R, d), false negatives masked."""
    logits = users @ items.T + candidates.popularity_correction  # (R, R)
    return logits.float().masked_fill(candidates.false_negative, MASKED_LOGIT)


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
