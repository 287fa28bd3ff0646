"""A synthetic dataset whose next item is learnable from item IDs: where an ID-only model must beat popularity.

hm-sample is the project's real data, but half its test targets never occur in
training and many targets repeat the user's history, so ID-only models barely clear
popularity there and cannot show whether a trainer learns as well as a peer library.
This generator writes processed/ and features/ of a MovieLens-100k-like set (943 users,
1,305 items, 15 interactions each, no repeats) with known structure:

- items fall into `genres`, each genre an ordered series; popularity within a genre is Zipf;
- each user has a taste over genres (Dirichlet, concentrated);
- the next item continues the previous item's series (the next item in it) with
  probability `follow`, else is drawn from the user's taste by popularity.

The features are random (a feature-based model has nothing to read in them): the set
compares ID-only models and trainers, not modalities. Their shapes are options: tiny by
default, the paper's (50 image tokens, 30 text tokens, 384 dims) for memory and speed
benchmarks, written in shards as `odmt extract` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.capacity import require_disk
from pipeline.dataset.processed import ITEMS, SEQUENCES, train_counts, write_processed
from pipeline.errors import InputError
from pipeline.features.store import TOKEN_DTYPE, FeatureIdentity, Manifest, items_fingerprint, shard_name, write_shard

SHARD_SIZE = 4096  # items per random shard: a paper-sized store is written a shard at a time


@dataclass(frozen=True)
class FeatureShapes:
    """Tokens per item of each modality and their width; the default is tiny (the paper's: 50, 30, 384)."""

    image_tokens: int = 2
    text_tokens: int = 2
    width: int = 8


def synthetic_sequences(users: int, items: int, length: int, genres: int, follow: float, seed: int) -> list[list[int]]:
    """Each user's items (1..items, oldest first, no repeats), drawn as the module docstring says.

    A draw picks its genre from the genres' masses, then the item inside that genre only:
    a step costs a genre's items, not the catalogue's (61k items x 50k users x 15 steps
    would be 46 billion operations). It consumes the random stream as `rng.choice` over
    the whole catalogue did, one uniform per draw, so a seed gives the same sequences.
    """
    rng = np.random.default_rng(seed)
    genre = np.sort(rng.integers(genres, size=items))  # item i + 1 is in genre[i]; a genre's items are its series
    starts = np.searchsorted(genre, np.arange(genres + 1))  # genre g's items are starts[g]:starts[g + 1]
    weight = 1.0 / (1.0 + np.arange(items) - starts[genre])  # Zipf within each genre
    genre_weight = np.array([weight[starts[g] : starts[g + 1]].sum() for g in range(genres)])
    sequences = []
    for _ in range(users):
        taste = rng.dirichlet(np.full(genres, 0.2)) + 1e-3  # every genre stays possible
        sequence: list[int] = []
        while len(sequence) < length:
            last = sequence[-1] - 1 if sequence else -1
            series_goes_on = 0 <= last < items - 1 and genre[last + 1] == genre[last] and last + 2 not in sequence
            if series_goes_on and rng.random() < follow:
                sequence.append(last + 2)
                continue
            sequence.append(draw(rng.random(), taste, genre, starts, weight, genre_weight, sequence) + 1)
        sequences.append(sequence)
    return sequences


def draw(
    uniform: float, taste: np.ndarray, genre: np.ndarray, starts: np.ndarray, weight: np.ndarray, genre_weight: np.ndarray, drawn: list[int]
) -> int:
    """The item (0-based) at `uniform` of the distribution taste[genre] x weight with the `drawn` items (1-based) removed."""
    taken = np.asarray(drawn, dtype=np.int64) - 1
    mass = taste * genre_weight
    np.subtract.at(mass, genre[taken], taste[genre[taken]] * weight[taken])
    cumulative = np.cumsum(mass.clip(min=0))
    target = uniform * cumulative[-1]
    g = min(int(np.searchsorted(cumulative, target, side="right")), len(mass) - 1)
    inside = taste[g] * weight[starts[g] : starts[g + 1]]
    inside[taken[genre[taken] == g] - starts[g]] = 0
    remaining = max(target - (cumulative[g - 1] if g else 0.0), 0.0)
    position = min(int(np.searchsorted(np.cumsum(inside), remaining, side="right")), int(np.flatnonzero(inside)[-1]))
    return int(starts[g]) + position


def write_random_store(folder: Path, modality: str, items: pa.Table, seed: int, width: int = 8, length: int = 4) -> None:
    """A complete feature store of random N(0, 1) tokens for `items`, laid out as `odmt extract` writes one.

    Text gets a real-token mask of random length (the CLS token always real), as real
    titles are shorter than the token budget.
    """
    rng = np.random.default_rng(seed)
    item_idx = items["item_idx"].to_numpy()
    shards = []
    for index, start in enumerate(range(0, len(item_idx), SHARD_SIZE)):
        chunk = item_idx[start : start + SHARD_SIZE]
        tokens = rng.standard_normal(size=(len(chunk), length, width), dtype=np.float32)
        mask = None
        if modality == "text":
            mask = np.arange(length) < rng.integers(1, length + 1, size=len(chunk))[:, None]
            tokens[~mask] = 0
        write_shard(folder / shard_name(index), chunk, tokens, mask)
        shards.append({"file": shard_name(index), "items": len(chunk)})
    identity = FeatureIdentity(modality, "random", "none", items_fingerprint(items), width, length, "none", {}, SHARD_SIZE)
    Manifest(identity, shards, complete=True).write(folder)


def write_synthetic(
    out: Path,
    users: int = 943,
    items: int = 1305,
    length: int = 15,
    genres: int = 20,
    follow: float = 0.5,
    seed: int = 0,
    shapes: FeatureShapes = FeatureShapes(),
) -> dict[str, Any]:
    """Write out/processed (the processed contract) and out/features (random stores); return the stats.

    Items never drawn are dropped, as prepare drops items that no longer occur.
    """
    if length < 3 or items < length or users < 1 or genres < 1 or not 0 <= follow <= 1:
        raise InputError(
            f"synthetic set: users {users}, items {items}, length {length}, genres {genres}, follow {follow}; "
            "need users >= 1, length >= 3 (leave-one-out), items >= length, genres >= 1, 0 <= follow <= 1"
        )
    token_bytes = items * (shapes.image_tokens + shapes.text_tokens) * shapes.width * np.dtype(TOKEN_DTYPE).itemsize
    require_disk(
        out, token_bytes, f"{out}: the random feature store of {items} items", "--items, --image-tokens, --text-tokens or --feature-dim"
    )
    drawn = synthetic_sequences(users, items, length, genres, follow, seed)
    occurring = np.unique(np.concatenate(drawn))  # the processed contract: every item occurs, 1..N in id order
    new_idx = np.zeros(items + 1, dtype=np.int64)
    new_idx[occurring] = np.arange(1, len(occurring) + 1)
    sequences = [new_idx[s].tolist() for s in drawn]
    items = len(occurring)
    train_count = train_counts(sequences, items)
    item_idx = np.arange(1, items + 1, dtype=np.int32)
    item_table = pa.table(
        {
            "item_idx": item_idx,
            "item_id": [f"i{i:05d}" for i in item_idx],
            "text": [f"item {i}" for i in item_idx],
            "image_path": pa.nulls(items, pa.string()),
            "train_count": train_count[1:],
        },
        schema=ITEMS,
    )
    sequence_table = pa.table(
        {"user_idx": np.arange(users, dtype=np.int32), "user_id": [f"u{u:05d}" for u in range(users)], "items": sequences}, schema=SEQUENCES
    )
    stats = {
        "users": users,
        "items": items,
        "interactions": users * length,
        "average_length": float(length),
        "density": users * length / (users * items),
        "generator": {"genres": genres, "follow": follow, "seed": seed},
    }
    write_processed(out / "processed", item_table, sequence_table, stats)
    tokens = {"image": shapes.image_tokens, "text": shapes.text_tokens}
    for offset, modality in enumerate(tokens):
        write_random_store(out / "features" / modality, modality, item_table, seed + offset, shapes.width, tokens[modality])
    return stats
