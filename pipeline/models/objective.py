"""The objective every model shares: which softmax a step's targets are scored under (`train.loss`).
ODMT's online distillation (eq. 7-9) adds to it in pipeline/models/odmt.py.

Every non-padding position of every sequence in the batch is a training target, or,
for prefix instances (`train.instances: prefixes`), only each row's last position. Two
softmaxes, one interface (`Candidates`: the columns a row is scored against and which
of them is its target):

- "in_batch", paper 3.4 (eq. 5-6): the targets of the whole batch are the candidates,
  row r's true column being r. Scores are corrected by -log(popularity) from the
  training part (`popularity_correction`, the logQ correction of a sampled softmax),
  and a column whose item occurs anywhere in row r's own sequence is masked (a false
  negative), except the true column itself. With `global_negatives` under torchrun,
  the other ranks' targets are appended as columns (gradients flow back to the rank
  that encoded them), so N processes score against the candidates of one
  N-times-larger batch; a rank's own columns come first, so row r's true column stays r.
- "full_softmax": every item of the catalogue is a candidate, the target its own
  item: RecBole's CE loss. No sampling, so no popularity correction and no masking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline import distributed
from pipeline.training.config import Loss

# What a model's forward returns: the loss, and its logged parts as detached scalars left on the device.
TrainingLoss = tuple[torch.Tensor, dict[str, torch.Tensor]]

# The authors' masked logit: finite, so KL terms stay defined, and exp() of it is 0 even after /T.
MASKED_LOGIT = -1e4


@dataclass(frozen=True)
class Objective:
    """What a model's forward scores its targets against (train.loss and the switches that go with it)."""

    loss: Loss = "in_batch"
    popularity_correction: bool = True  # in_batch: subtract log pop(j) from every score (eq. 6)
    global_negatives: bool = False  # in_batch under torchrun: every rank's targets are candidates
    last_position_only: bool = False  # prefix instances: a row's earlier positions are inputs, not targets

    @property
    def full_softmax(self) -> bool:
        return self.loss == "full_softmax"


@dataclass(frozen=True)
class Candidates:
    """Which slots of a batch are targets, and what each target row is scored against."""

    rows: torch.Tensor  # (B, L) bool: positions whose input and target are real items
    targets: torch.Tensor  # (R,) the column of each row's true candidate
    correction: torch.Tensor | None = None  # (C,) added to every row's scores: -log pop(j), or nothing
    masked: torch.Tensor | None = None  # (R, C) bool: a false negative or another rank's padding
    shared_rows: int | None = None  # global negatives: every rank's targets padded to this many, the others' appended


def target_positions(sequences: torch.Tensor, last_position_only: bool = False) -> torch.Tensor:
    """(B, L) bool: positions of sequences (B, L + 1) that are trained on; a target needs an item before it."""
    rows = (sequences[:, :-1] != 0) & (sequences[:, 1:] != 0)
    if last_position_only:
        rows[:, :-1] = False
    return rows


def candidates(sequences: torch.Tensor, popularity: torch.Tensor, objective: Objective) -> Candidates:
    """The candidates of `objective` for sequences (B, L + 1) left-padded; popularity (N + 1,) training-part counts."""
    if objective.full_softmax:
        rows = target_positions(sequences, objective.last_position_only)
        return Candidates(rows=rows, targets=sequences[:, 1:][rows] - 1)  # column j - 1 is item j (no padding column)
    return in_batch_candidates(sequences, popularity, objective)


def in_batch_candidates(sequences: torch.Tensor, popularity: torch.Tensor, objective: Objective = Objective()) -> Candidates:
    """Eq. 5-6: the batch's targets are the columns. `global_negatives` takes effect only under torchrun."""
    rows = target_positions(sequences, objective.last_position_only)
    target_items = sequences[:, 1:][rows]  # (R,)
    columns, shared_rows = target_items, None
    if objective.global_negatives and distributed.active():
        shared_rows = distributed.max_over_ranks(len(target_items))
        columns = torch.cat([target_items, distributed.other_ranks_rows(target_items, shared_rows)])  # 0: padding
    users = torch.arange(len(sequences), device=sequences.device).unsqueeze(1).expand_as(rows)[rows]  # (R,)
    user_has_item = (sequences.unsqueeze(2) == columns.view(1, 1, -1)).any(dim=1)  # (B, C)
    own = torch.eye(len(target_items), len(columns), dtype=torch.bool, device=sequences.device)
    return Candidates(
        rows=rows,
        targets=torch.arange(len(target_items), device=sequences.device),
        correction=-torch.log(popularity[columns].float()) if objective.popularity_correction else None,
        masked=(user_has_item[users] | (columns == 0)) & ~own,
        shared_rows=shared_rows,
    )


def candidate_logits(users: torch.Tensor, items: torch.Tensor, candidates: Candidates) -> torch.Tensor:
    """s(H, D) = H . D (- log pop(D), eq. 6) for users (R, d) against the candidate items (C, d), masked columns masked.

    In-batch, `items` are the rows' target items; with global negatives the other ranks'
    target items join them as columns. Full softmax: every item of the catalogue.
    """
    if candidates.shared_rows is not None:
        items = torch.cat([items, distributed.other_ranks_rows(items, candidates.shared_rows)])
    logits = users @ items.T  # (R, C)
    if candidates.correction is not None:
        logits = logits + candidates.correction
    logits = logits.float()
    return logits if candidates.masked is None else logits.masked_fill(candidates.masked, MASKED_LOGIT)


def cross_entropy(logits: torch.Tensor, candidates: Candidates) -> torch.Tensor:
    """Eq. 5/8: each row's true candidate is column candidates.targets[row]."""
    return F.cross_entropy(logits, candidates.targets)
