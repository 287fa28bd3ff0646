"""The feature store contract (docs/design.md), defined once and checked by every reader.

features/<modality>/shard-00000.h5   item_idx int32 [n]; tokens float16 [n, L, d];
                                     mask bool [n, L] (text only: False on padding)
features/<modality>/manifest.json    what built the shards (encoder, weights, items,
                                     preprocessing), so a mismatch is refused, never mixed

Every dataset is chunked with HDF5's Fletcher-32 checksum, verified by HDF5 on each read:
a damaged shard is refused, never averaged into metrics. A token chunk is one item, so a
batch reads and verifies only its own items. Values are also checked finite as they are
read, which no checksum promises: an encoder may have written NaN, and Fletcher-32 passes a
chunk overwritten whole, checksum included, with 0xFF bytes (float16 NaN) or zeros.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import torch

from pipeline.artifacts import atomic_path, write_json
from pipeline.errors import InputError

SCHEMA_VERSION = 2  # 2: Fletcher-32 checksums
MANIFEST_FILE = "manifest.json"
ITEM_IDX, TOKENS, MASK = "item_idx", "tokens", "mask"
TOKEN_DTYPE = np.float16


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


@dataclass(frozen=True)
class FeatureIdentity:
    """Everything that determines the features' values: two stores with equal identities are interchangeable."""

    modality: str
    encoder: str  # the name in params.yaml: packaged encoder, Hub id or folder
    weights_fingerprint: str
    items_fingerprint: str
    d: int
    L: int
    pooling: str
    preprocessing: dict[str, Any]  # text: max tokens; image: size, resampling, mean, std
    shard_size: int
    schema_version: int = SCHEMA_VERSION

    def differences(self, other: FeatureIdentity) -> list[str]:
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{key}: {theirs[key]!r} -> {mine[key]!r}" for key in mine if mine[key] != theirs[key]]


@dataclass(frozen=True)
class Manifest:
    identity: FeatureIdentity
    shards: list[dict[str, Any]] = field(default_factory=list)  # file, items, first/last item_idx
    complete: bool = False

    def write(self, folder: Path) -> None:
        write_json(
            folder / MANIFEST_FILE, {"identity": dataclasses.asdict(self.identity), "shards": self.shards, "complete": self.complete}
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        path = folder / MANIFEST_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(FeatureIdentity(**data["identity"]), data["shards"], data["complete"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a feature manifest ({error}). Delete {folder} and run `odmt extract`.") from error


def items_fingerprint(items: pa.Table) -> str:
    """SHA-256 of the columns features depend on (item_idx, item_id, text, image_path)."""
    digest = hashlib.sha256()
    for name in ("item_idx", "item_id", "text", "image_path"):
        digest.update(json.dumps(items[name].to_pylist()).encode())
    return digest.hexdigest()


def write_shard(path: Path, item_idx: np.ndarray, tokens: np.ndarray, mask: np.ndarray | None) -> None:
    """Write one shard under a temporary name and rename it: a shard file that exists is complete.

    Chunks of one item for the tokens, HDF5's choice for the small item_idx and mask, each with
    its checksum. The same input gives the same bytes (DVC hashes them).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        file.attrs["schema_version"] = SCHEMA_VERSION
        file.create_dataset(ITEM_IDX, data=item_idx.astype(np.int32), chunks=True, fletcher32=True)
        file.create_dataset(TOKENS, data=tokens.astype(TOKEN_DTYPE), chunks=(1, *tokens.shape[1:]), fletcher32=True)
        if mask is not None:
            file.create_dataset(MASK, data=mask.astype(bool), chunks=True, fletcher32=True)


def open_shard(path: Path, with_mask: bool) -> h5py.File:
    """A shard opened for reading, its datasets checked against the schema (without reading them)."""
    fix = f"Delete {path} and run `odmt extract` again to rebuild it."
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: not a readable HDF5 shard ({error}). {fix}") from error
    version = file.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        file.close()
        raise InputError(
            f"{path}: feature schema version {version}, this code reads version {SCHEMA_VERSION} "
            "(checksummed shards); rebuild the store with `odmt extract --force`."
        )
    names = (ITEM_IDX, TOKENS, *([MASK] if with_mask else []))
    missing = [n for n in names if n not in file]
    if missing:
        file.close()
        raise InputError(f"{path}: datasets {missing} missing. {fix}")
    item_idx, tokens = file[ITEM_IDX], file[TOKENS]
    shapes_agree = tokens.ndim == 3 and len(item_idx) == len(tokens) and (not with_mask or file[MASK].shape == tokens.shape[:2])
    checksummed = all(file[name].fletcher32 for name in names)
    if item_idx.dtype != np.int32 or tokens.dtype != TOKEN_DTYPE or not shapes_agree or not checksummed:
        file.close()
        raise InputError(f"{path}: dtypes, shapes or checksums break the feature schema. {fix}")
    return file


def read_checked(dataset: h5py.Dataset, selection: Any = ()) -> np.ndarray:
    """dataset[selection], as HDF5 reads it after verifying its checksums: a failure names the damaged shard.

    Every read of shard data goes through here: h5py reports a checksum mismatch as an OSError.
    """
    try:
        return dataset[selection]
    except OSError as error:
        path = dataset.file.filename
        raise InputError(
            f"{path}: its {dataset.name.lstrip('/')} data are damaged ({error}); delete {path} and "
            "re-run `odmt extract`, which rebuilds only the missing shards."
        ) from error


def first_non_finite(tokens: np.ndarray) -> int | None:
    """The first row (item) of `tokens` holding a NaN or an infinity, or None when every value is finite.

    All values are finite when their min and max are (a NaN propagates to both): one pass
    that is 10x faster than np.isfinite on float16; the row is looked for only on failure.
    """
    if tokens.size == 0:
        return None
    low, high = torch.aminmax(torch.from_numpy(tokens))
    if low.isfinite() and high.isfinite():
        return None
    return int(np.argmin(np.isfinite(tokens).reshape(len(tokens), -1).all(axis=1)))


def non_finite_error(path: str | Path, item_idx: int, item_id: str | None = None) -> InputError:
    """The error for an item whose stored features are NaN or infinite though their checksum holds."""
    item = f"item_idx {item_idx}" + (f" (item_id {item_id})" if item_id is not None else "")
    return InputError(
        f"{path}: {item} has NaN or infinite feature values; delete {path} and re-run `odmt extract`, "
        "which rebuilds it (with -S extract.precision=fp32 if the encoder overflowed)."
    )


def read_shard(path: Path, with_mask: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(item_idx [n], tokens [n, L, d] float16, mask [n, L] or None), checked against the schema, checksums and finite."""
    with open_shard(path, with_mask) as file:
        item_idx, tokens = read_checked(file[ITEM_IDX]), read_checked(file[TOKENS])
        mask = read_checked(file[MASK]) if with_mask else None
    row = first_non_finite(tokens)
    if row is not None:
        raise non_finite_error(path, int(item_idx[row]))
    return item_idx, tokens, mask


def read_item_idx(path: Path) -> np.ndarray:
    """Only the item ids of a shard: enough to know what a finished shard covers."""
    with open_shard(path, with_mask=False) as file:
        return read_checked(file[ITEM_IDX])


def finished_manifest(folder: Path, items: pa.Table) -> Manifest:
    """The manifest of a complete store built from `items`; refused when unfinished or built from another items table."""
    manifest = Manifest.read(folder)
    if manifest is None or not manifest.complete:
        raise InputError(f"{folder}: no complete feature store (manifest.json). Run `odmt extract` (it resumes).")
    if manifest.identity.items_fingerprint != items_fingerprint(items):
        raise InputError(
            f"{folder / MANIFEST_FILE}: features were extracted from another items table than the processed one. "
            "Re-run `odmt extract --force` after `odmt prepare`."
        )
    return manifest


def load_tokens(folder: Path, items: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
    """All tokens of a finished store, row i = item_idx i and row 0 = padding zeros: (N + 1, L, d), mask (N + 1, L)."""
    store = ShardedTokens(folder, items)
    return store.load().numpy(), None if store.mask is None else store.mask.numpy()


class ShardedTokens:
    """A finished store's tokens, read from its shards as they are indexed: any catalogue in bounded memory.

    Indexed like the (N + 1, L, d) tensor `load_tokens` builds, with a tensor of item ids
    of any shape and optionally a token index (`tokens[items]`, `tokens[items, :length]`,
    `tokens[items, 0]`): only the rows asked for are read, and row 0 (padding) is zeros.
    At the paper's 61k items x 80 tokens x 384 dims the catalogue is 3.75 GB of float16;
    a training batch reads about 1,600 of its items (20 ms from the page cache).
    """

    def __init__(self, folder: Path, items: pa.Table, device: torch.device = torch.device("cpu")) -> None:
        manifest = finished_manifest(folder, items)
        with_mask = manifest.identity.modality == "text"
        self.files = [open_shard(folder / shard["file"], with_mask) for shard in manifest.shards]
        self.tokens = [file[TOKENS] for file in self.files]  # each shard's tokens dataset, looked up once
        self.items = items.select(["item_idx", "item_id"])  # to name an item whose features are not finite
        self.shape = (items.num_rows + 1, manifest.identity.L, manifest.identity.d)
        self.device, self.dtype = device, torch.float16
        self.shard_of = np.full(self.shape[0], -1, dtype=np.int64)  # item -> its shard (-1: padding) and row there
        self.row_of = np.zeros(self.shape[0], dtype=np.int64)
        mask = np.zeros(self.shape[:2], dtype=bool)
        for index, file in enumerate(self.files):
            item_idx = read_checked(file[ITEM_IDX])
            self.shard_of[item_idx], self.row_of[item_idx] = index, np.arange(len(item_idx))
            if with_mask:
                mask[item_idx] = read_checked(file[MASK])
        self.mask = torch.from_numpy(mask) if with_mask else None  # (N + 1, L): small, kept in memory

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device: torch.device) -> ShardedTokens:
        """The same store, returning its rows on `device` (the files stay shared)."""
        moved = copy.copy(self)
        moved.device = device
        return moved

    def __getitem__(self, index: torch.Tensor | tuple[torch.Tensor, int | slice]) -> torch.Tensor:
        items, token = index if isinstance(index, tuple) else (index, slice(None))
        distinct, inverse = np.unique(items.cpu().numpy(), return_inverse=True)
        width = np.empty(self.shape[1])[token].shape  # the token index's shape: () or (L',)
        rows = np.zeros((len(distinct), *width, self.shape[2]), dtype=TOKEN_DTYPE)
        for position, item in enumerate(distinct):  # item by item: h5py's list indexing of chunks is 5x slower
            if self.shard_of[item] >= 0:
                rows[position] = read_checked(self.tokens[self.shard_of[item]], (self.row_of[item], token))
        self.refuse_non_finite(rows, distinct)
        return torch.from_numpy(rows[inverse.reshape(items.shape)]).to(self.device)

    def load(self) -> torch.Tensor:
        """Every row in memory, as `load_tokens` has them: faster to index where memory allows (a GPU)."""
        whole = torch.zeros(self.shape, dtype=self.dtype)
        for file in self.files:
            item_idx, tokens = read_checked(file[ITEM_IDX]), read_checked(file[TOKENS])
            self.refuse_non_finite(tokens, item_idx)
            whole[torch.from_numpy(item_idx.astype(np.int64))] = torch.from_numpy(tokens)
        return whole.to(self.device)

    def refuse_non_finite(self, rows: np.ndarray, item_idx: np.ndarray) -> None:
        """InputError naming the shard and the item of the first NaN or infinite value in `rows` (of items `item_idx`)."""
        row = first_non_finite(rows)
        if row is not None:
            item = int(item_idx[row])
            item_id = self.items["item_id"][self.items["item_idx"].index(item).as_py()].as_py()
            raise non_finite_error(self.files[self.shard_of[item]].filename, item, item_id)
