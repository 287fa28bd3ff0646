"""Sequences for training and validation, cut from the leave-one-out split (never the test target)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import torch

from pipeline.dataset.processed import PADDING_IDX, leave_one_out


def left_pad(items: Sequence[int], length: int) -> list[int]:
    """The last `length` items, padded on the left with 0 so the latest item is always last."""
    kept = list(items)[-length:]
    return [PADDING_IDX] * (length - len(kept)) + kept


def training_sequences(sequences: pa.Table, positions: int) -> torch.Tensor:
    """(U, positions + 1): each user's training part; every position predicts the next."""
    return torch.tensor(
        [left_pad(leave_one_out(s).train, positions + 1) for s in sequences["items"].to_pylist()], dtype=torch.long
    )


@dataclass(frozen=True)
class RankingTask:
    """Users' inputs, their targets, and the history items excluded from ranking."""

    histories: torch.Tensor  # (U, positions) left-padded
    targets: torch.Tensor  # (U,)
    exclude: list[list[int]]


def validation_task(sequences: pa.Table, positions: int) -> RankingTask:
    """Input: the training part; target: the second-to-last item; excluded: the training part."""
    splits = [leave_one_out(s) for s in sequences["items"].to_pylist()]
    return RankingTask(
        histories=torch.tensor([left_pad(s.train, positions) for s in splits], dtype=torch.long),
        targets=torch.tensor([s.valid for s in splits], dtype=torch.long),
        exclude=[sorted(set(s.train)) for s in splits],
    )
