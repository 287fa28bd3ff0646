import h5py
import numpy as np
import pytest
import torch

from pipeline.dataset.processed import read_processed
from pipeline.errors import InputError
from pipeline.features.store import SCHEMA_VERSION, FeatureIdentity, Manifest, ShardedTokens, load_tokens, read_shard, write_shard
from pipeline.synthetic import dataset as synthetic
from pipeline.synthetic.dataset import FeatureShapes, write_synthetic


def identity(**changes) -> FeatureIdentity:
    values = dict(
        modality="text",
        encoder="enc",
        weights_fingerprint="w",
        items_fingerprint="i",
        d=4,
        L=3,
        pooling="none",
        preprocessing={"max_tokens": 3},
        shard_size=2,
    )
    return FeatureIdentity(**(values | changes))


def test_shard_round_trip_keeps_the_schema(tmp_path):
    tokens = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    mask = np.array([[True, True, False], [True, False, False]])
    write_shard(tmp_path / "shard-00000.h5", np.array([1, 2]), tokens, mask)
    item_idx, read_tokens, read_mask = read_shard(tmp_path / "shard-00000.h5", with_mask=True)
    assert item_idx.dtype == np.int32 and item_idx.tolist() == [1, 2]
    assert read_tokens.dtype == np.float16 and np.array_equal(read_tokens, tokens.astype(np.float16))
    assert np.array_equal(read_mask, mask)
    assert [p.name for p in tmp_path.iterdir()] == ["shard-00000.h5"]  # no temporary left behind


def test_shards_breaking_the_schema_are_refused(tmp_path):
    write_shard(tmp_path / "a.h5", np.array([1]), np.zeros((1, 3, 4)), None)
    with pytest.raises(InputError, match="mask"):
        read_shard(tmp_path / "a.h5", with_mask=True)
    with h5py.File(tmp_path / "b.h5", "w") as file:
        file.attrs["schema_version"] = SCHEMA_VERSION
        file.create_dataset("item_idx", data=np.array([1], np.int32), fletcher32=True)
        file.create_dataset("tokens", data=np.zeros((1, 3, 4), np.float32), fletcher32=True)  # float32, not float16
    with pytest.raises(InputError, match="b.h5: dtypes, shapes"):
        read_shard(tmp_path / "b.h5", with_mask=False)
    (tmp_path / "c.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="c.h5: not a readable HDF5 shard"):
        read_shard(tmp_path / "c.h5", with_mask=False)


def test_manifest_round_trip_and_differences(tmp_path):
    manifest = Manifest(identity(), [{"file": "shard-00000.h5", "items": 2}], complete=True)
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path) == manifest
    assert identity(d=8).differences(identity()) == ["d: 4 -> 8"]
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="not a feature manifest"):
        Manifest.read(tmp_path)


def test_sharded_tokens_read_exactly_the_rows_a_loaded_store_has(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "SHARD_SIZE", 16)  # 40 items in three shards
    write_synthetic(tmp_path, users=20, items=40, length=5, genres=2, shapes=FeatureShapes(3, 7, 12))
    items, _ = read_processed(tmp_path / "processed")
    loaded, mask = load_tokens(tmp_path / "features" / "text", items)
    store = ShardedTokens(tmp_path / "features" / "text", items)
    loaded = torch.from_numpy(loaded)
    last = items.num_rows
    batch = torch.tensor([[0, 17, 3, 17], [last, 1, 0, 16]])  # padding, repeats, every shard, any order
    assert len(store) == len(loaded) == items.num_rows + 1 and store.shape == tuple(loaded.shape)
    assert torch.equal(store[batch], loaded[batch])
    assert torch.equal(store[batch, 0], loaded[batch, 0]) and torch.equal(store[batch, :4], loaded[batch, :4])
    assert torch.equal(store.load(), loaded) and torch.equal(store.mask, torch.from_numpy(mask))
    assert (store[torch.tensor([0])] == 0).all()
