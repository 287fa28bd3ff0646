"""Damaged or non-finite features stop a stage with the shard and the item named; they never reach a metric."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from pipeline.errors import InputError
from pipeline.evaluation.ranking import Popularity, item_embeddings
from pipeline.features.store import (
    FeatureIdentity,
    Manifest,
    ShardedTokens,
    items_fingerprint,
    read_item_idx,
    read_shard,
    shard_name,
    write_shard,
)
from stages.cli import app
from tests.conftest import REPO, run_options

runner = CliRunner()
PARAMS = ["--params", str(REPO / "params.yaml")]
TINY = ["-S", "model.hidden_size=16", "-S", "train.epochs=1", "-S", "train.device=cpu"]


def overwrite_chunk(path: Path, dataset: str, chunk: int, byte: bytes, with_checksum: bool = False) -> None:
    """Overwrite one chunk's data in the file with `byte`, and its 4-byte Fletcher-32 checksum too if asked."""
    with h5py.File(path) as file:
        info = file[dataset].id.get_chunk_info(chunk)  # where the data lie in the file, not its metadata
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset)
        raw.write(byte * (info.size if with_checksum else info.size - 4))


def overwrite_tokens(path: Path, first_item: int, size: int, byte: bytes) -> None:
    """`size` bytes of the tokens data overwritten with `byte`, from inside item `first_item`'s chunk on.

    Chunk bytes only: HDF5 puts its chunk index between runs of chunks, and a damaged index is another failure.
    """
    with h5py.File(path) as file:
        tokens = file["tokens"].id
        chunks = [tokens.get_chunk_info(i) for i in range(first_item, tokens.get_num_chunks())]
    skip = 10  # start mid-chunk: that chunk's data no longer match its checksum
    with open(path, "r+b") as raw:
        for chunk in chunks:
            raw.seek(chunk.byte_offset + skip)
            raw.write(byte * min(size, chunk.size - skip))
            size, skip = size - (chunk.size - skip), 0
            if size <= 0:
                return
    raise AssertionError(f"{path}: fewer token bytes than overwritten")


def tokens_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 4)).astype(np.float32)


def small_store(folder: Path, tokens: np.ndarray) -> pa.Table:
    """A one-shard text store of `tokens` (item_idx 1..n) and the items table it was built from."""
    n, length, width = tokens.shape
    items = pa.table(
        {
            "item_idx": pa.array(range(1, n + 1), pa.int32()),
            "item_id": [f"a{i}" for i in range(1, n + 1)],
            "text": ["t"] * n,
            "image_path": pa.nulls(n, pa.string()),
        }
    )
    write_shard(folder / shard_name(0), np.arange(1, n + 1), tokens, np.ones(tokens.shape[:2], dtype=bool))
    identity = FeatureIdentity("text", "random", "none", items_fingerprint(items), width, length, "none", {}, n)
    Manifest(identity, [{"file": shard_name(0), "items": n}], complete=True).write(folder)
    return items


def test_shards_are_checksummed_and_written_to_the_same_bytes(tmp_path):
    tokens = np.random.default_rng(0).standard_normal((64, 50, 384)).astype(np.float32)
    mask = np.ones((64, 50), dtype=bool)
    for name in ("a.h5", "b.h5"):
        write_shard(tmp_path / name, np.arange(1, 65), tokens, mask)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()  # DVC hashes the bytes
    with h5py.File(tmp_path / "a.h5") as file:
        assert all(file[name].fletcher32 for name in ("item_idx", "tokens", "mask"))
        assert file["tokens"].chunks == (1, 50, 384)
    payload = tokens.astype(np.float16).nbytes + mask.nbytes + 64 * 4
    assert (tmp_path / "a.h5").stat().st_size < 1.01 * payload


def test_damaged_token_bytes_are_refused_naming_the_shard(tmp_path):
    items = small_store(tmp_path, tokens_of(6))
    shard = tmp_path / shard_name(0)
    overwrite_chunk(shard, "tokens", 3, b"\x00")  # finite zeros: only the checksum can tell
    refused = rf"{shard}: its tokens data are damaged .*delete {shard} and re-run `odmt extract`"
    with pytest.raises(InputError, match=refused):
        read_shard(shard, with_mask=True)
    store = ShardedTokens(tmp_path, items)
    assert store[torch.tensor([1, 2, 6])].shape == (3, 3, 4)  # a batch verifies its own items' chunks only
    with pytest.raises(InputError, match=rf"{shard}: its tokens data are damaged"):
        store[torch.tensor([[1, 4]])]  # item_idx 4 is chunk 3
    with pytest.raises(InputError, match=rf"{shard}: its tokens data are damaged"):
        store.load()


@pytest.mark.parametrize("dataset", ["item_idx", "mask"])
def test_damaged_ids_or_mask_are_refused_naming_the_shard(tmp_path, dataset):
    items = small_store(tmp_path, tokens_of(6))
    shard = tmp_path / shard_name(0)
    overwrite_chunk(shard, dataset, 0, b"\x00")
    with pytest.raises(InputError, match=rf"{shard}: its {dataset} data are damaged"):
        ShardedTokens(tmp_path, items)
    if dataset == "item_idx":
        with pytest.raises(InputError, match=rf"{shard}: its item_idx data are damaged"):
            read_item_idx(shard)  # what a resumed `odmt extract` reads


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_with_a_valid_checksum_are_refused_naming_the_item(tmp_path, bad):
    tokens = tokens_of(6)
    tokens[4, 2, 1] = bad  # item_idx 5
    items = small_store(tmp_path, tokens)
    shard = tmp_path / shard_name(0)
    with pytest.raises(InputError, match=rf"{shard}: item_idx 5 has NaN or infinite feature values"):
        read_shard(shard, with_mask=True)
    store = ShardedTokens(tmp_path, items)
    assert torch.isfinite(store[torch.tensor([1, 6])]).all()
    with pytest.raises(InputError, match=rf"{shard}: item_idx 5 \(item_id a5\) has NaN or infinite"):
        store[torch.tensor([0, 2, 5])]
    with pytest.raises(InputError, match=r"item_idx 5 \(item_id a5\)"):
        store.load()


def test_a_chunk_overwritten_with_0xff_checksum_and_all_is_caught_as_nan(tmp_path):
    """Fletcher-32 of 0xFF bytes is 0xFFFFFFFF: such a chunk passes its checksum, but float16 0xFFFF is NaN."""
    items = small_store(tmp_path, tokens_of(6))
    overwrite_chunk(tmp_path / shard_name(0), "tokens", 1, b"\xff", with_checksum=True)
    with pytest.raises(InputError, match=r"item_idx 2 \(item_id a2\) has NaN"):
        ShardedTokens(tmp_path, items)[torch.tensor([2])]


def test_shards_of_the_old_schema_or_without_checksums_are_refused(tmp_path):
    with h5py.File(tmp_path / "old.h5", "w") as file:  # as version 1 wrote them: contiguous, no checksum
        file.attrs["schema_version"] = 1
        file["item_idx"] = np.array([1], np.int32)
        file["tokens"] = np.zeros((1, 3, 4), np.float16)
    with pytest.raises(InputError, match=r"old.h5: feature schema version 1, .*version 2.*`odmt extract --force`"):
        read_shard(tmp_path / "old.h5", with_mask=False)
    with h5py.File(tmp_path / "old.h5", "r+") as file:
        file.attrs["schema_version"] = 2
    with pytest.raises(InputError, match=r"old.h5: dtypes, shapes or checksums"):
        read_shard(tmp_path / "old.h5", with_mask=False)


def test_non_finite_item_embeddings_are_never_ranked():
    padding_only = Popularity(torch.tensor([float("nan"), 3.0, 1.0]))  # row 0 is padding, never ranked
    assert item_embeddings(padding_only)["popularity"].shape == (3, 1)
    with pytest.raises(InputError, match=r"item_idx 2: its popularity embedding is NaN or infinite.*corrupt"):
        item_embeddings(Popularity(torch.tensor([0.0, 3.0, float("inf"), float("nan")])))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> tuple[Path, Path, Path]:
    """A tiny ODMT trained one epoch through the CLI: (processed, features, run)."""
    processed, features = data
    run = tmp_path_factory.mktemp("integrity") / "run"
    result = runner.invoke(app, ["train", "--processed", str(processed), "--features", str(features), "--out", str(run), *PARAMS, *TINY])
    assert result.exit_code == 0, result.output
    return processed, features, run


def damaged_copy(features: Path, to: Path) -> Path:
    """A copy of `features` whose text shard has 4 KB of 0xFF written inside its tokens data; returns that shard."""
    shutil.copytree(features, to)
    shard = to / "text" / shard_name(0)
    overwrite_tokens(shard, first_item=5, size=4096, byte=b"\xff")
    return shard


def assert_refused(result, *named: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())  # the console may wrap a long path
    for text in named:
        assert text in flat, result.output


def test_evaluate_refuses_damaged_features(tmp_path, trained):
    processed, features, run = trained
    shard = damaged_copy(features, tmp_path / "features")
    result = runner.invoke(
        app,
        [
            "evaluate",
            *run_options(run, processed, tmp_path / "features", tmp_path / "metrics"),
            *PARAMS,
        ],
    )
    assert_refused(result, str(shard), "odmt extract")
    assert not (tmp_path / "metrics" / "metrics.json").exists()


def test_train_refuses_damaged_features(tmp_path, trained):
    processed, features, _ = trained
    shard = damaged_copy(features, tmp_path / "features")
    result = runner.invoke(
        app,
        ["train", "--processed", str(processed), "--features", str(tmp_path / "features"), "--out", str(tmp_path / "run"), *PARAMS, *TINY],
    )
    assert_refused(result, str(shard), "odmt extract")
    assert list((tmp_path / "run").glob("best*")) == []


def test_evaluate_refuses_nan_features_naming_the_item(tmp_path, trained):
    processed, features, run = trained
    copy = tmp_path / "features"
    shutil.copytree(features, copy)
    shard = copy / "image" / shard_name(0)
    item_idx, tokens, _ = read_shard(shard, with_mask=False)
    tokens[7, 0, 0] = np.nan
    write_shard(shard, item_idx, tokens, None)  # a valid checksum over a NaN, as a buggy encoder writes it
    result = runner.invoke(
        app,
        [
            "evaluate",
            *run_options(run, processed, copy, tmp_path / "metrics"),
            *PARAMS,
        ],
    )
    assert_refused(result, str(shard), f"item_idx {item_idx[7]} (item_id ")
    assert not (tmp_path / "metrics" / "metrics.json").exists()
