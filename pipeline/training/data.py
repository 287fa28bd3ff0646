"""Training sequences, cut from the leave-one-out split: never the valid or the test target."""

from __future__ import annotations

import pyarrow as pa
import torch

from pipeline.dataset.processed import leave_one_out, left_pad


def training_sequences(sequences: pa.Table, positions: int) -> torch.Tensor:
    """(U, positions + 1): each user's training part; every position predicts the next."""
    return torch.tensor(
        [left_pad(leave_one_out(s).train, positions + 1) for s in sequences["items"].to_pylist()], dtype=torch.long
    )
