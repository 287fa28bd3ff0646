"""Training sequences, cut from each user's training part of the split (never a valid or a test target, nor
what follows one), and each epoch's batches, the same for one process or many."""

from __future__ import annotations

import pyarrow as pa
import torch

from pipeline.dataset.processed import left_pad, user_splits
from pipeline.training.config import Instances


def training_sequences(sequences: pa.Table, positions: int, instances: Instances = "positions") -> torch.Tensor:
    """(S, positions + 1) left-padded rows cut from each user's training part.

    "positions": one row per user; every position predicts the next, in one causal pass.
    "prefixes": one row per prefix of two or more items, as RecBole cuts its instances;
    only a row's last position is a target (Objective.last_position_only). Left-padded,
    every prefix then ends at the last position, where ranking reads the user, whereas a
    user's row in "positions" trains its earlier targets at earlier positions. In-batch, a
    prefix masks only its own items as false negatives: the user's later items are
    negatives, as every item is in RecBole's CE.

    The training part is the split's (sequences.parquet): under leave-one-out all but the last two items;
    under a temporal split the interactions before the first cut. A user without one adds no row.
    """
    ends = user_splits(sequences).train_end.tolist()
    parts = [items[:end] for items, end in zip(sequences["items"].to_pylist(), ends) if end > 0]
    if instances == "prefixes":
        parts = [part[:end] for part in parts for end in range(2, len(part) + 1)]
    return torch.tensor([left_pad(part, positions + 1) for part in parts], dtype=torch.long)


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[torch.Tensor]:
    """This rank's batches (indices into the training sequences) for one epoch: the distributed sampler.

    A permutation seeded by (seed, epoch) is cut into global batches of batch_size x
    world_size sequences, each split evenly over the ranks: rank r's b-th batch and the
    others' b-th batches together are the b-th batch of one process with a world_size
    times larger batch_size. A last global batch with fewer sequences than ranks is
    dropped (at most world_size - 1 sequences an epoch), so every rank steps equally often.
    """
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed + epoch))
    return [part.tensor_split(world_size)[rank] for part in order.split(batch_size * world_size) if len(part) >= world_size]
