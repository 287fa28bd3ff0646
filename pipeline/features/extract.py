"""Extract: processed items -> frozen token/patch features in resumable HDF5 shards.

Computed once, never in training (the authors re-ran ViT and BERT on every run). Shard k
holds items [k * shard_size, (k + 1) * shard_size) in item_idx order; each is written
under a temporary name and renamed when complete, so a run that is interrupted (Ctrl-C,
kill -9) and started again keeps its finished shards and computes only the rest.
Under torchrun the unfinished shards are dealt out to the ranks, each writing its own;
rank 0 writes the manifest once every rank is done.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from pipeline import distributed
from pipeline.artifacts import read_parquet
from pipeline.dataset.processed import ITEMS, ITEMS_FILE
from pipeline.errors import InputError
from pipeline.features.config import ExtractConfig, Modality
from pipeline.features.encoders import ImageEncoder, TextEncoder, weights_fingerprint
from pipeline.features.store import (
    MANIFEST_FILE,
    TOKEN_DTYPE,
    FeatureIdentity,
    Manifest,
    first_non_finite,
    items_fingerprint,
    read_item_idx,
    shard_name,
    write_shard,
)
from pipeline.runtime import autocast, resolve_device, set_cpu_threads, single_thread_worker

log = logging.getLogger(__name__)


Encoder = TextEncoder | ImageEncoder


def load_encoder(modality: Modality, config: ExtractConfig) -> Encoder:
    device = resolve_device(config.device)
    if modality == "text":
        return TextEncoder(config.text.encoder, config.text.max_tokens, device)
    image = config.image
    return ImageEncoder(image.encoder, image.size, image.pool_grid, image.loader_workers, device)


def extract(
    modality: Modality,
    processed: Path,
    raw: Path,
    out: Path,
    config: ExtractConfig,
    force: bool = False,
    on_items: Callable[[int], None] = lambda n: None,
    encoder: Encoder | None = None,
) -> Manifest:
    """Write `out` = features/<modality>/: shards and manifest.json; resume what a previous run began.

    A store built from another encoder, preprocessing or items table is refused, or
    replaced when `force` is set. `on_items(n)` is called as items are done (progress);
    `encoder` may be passed already loaded (benchmarks), else it is loaded from `config`.
    """
    set_cpu_threads(config.cpu_threads)
    items = read_parquet(processed / ITEMS_FILE, ITEMS, f"odmt prepare --out {processed}")
    encoder = encoder or load_encoder(modality, config)
    identity = FeatureIdentity(
        modality=modality,
        encoder=encoder.name,
        weights_fingerprint=weights_fingerprint(encoder.model),
        items_fingerprint=items_fingerprint(items),
        d=encoder.d,
        L=encoder.L,
        pooling=encoder.pooling,
        preprocessing=encoder.preprocessing,
        shard_size=config.shard_size,
    )
    distributed.join(encoder.device)
    rank, world_size = distributed.rank_and_world()
    claim(out, identity, force, write=rank == 0)
    distributed.barrier()  # the store is claimed (or refused) before any rank writes a shard

    plan = [items.slice(start, config.shard_size) for start in range(0, items.num_rows, config.shard_size)]
    done = [k for k, shard in enumerate(plan) if finished(out / shard_name(k), shard)]
    pending = [k for k in range(len(plan)) if k not in done][rank::world_size]  # torchrun: every rank its own shards
    on_items(sum(plan[k].num_rows for k in done) if rank == 0 else 0)
    if pending:
        log.info("%s features: %d of %d shards to compute here (%d done)", modality, len(pending), len(plan), len(done))
        encode_shards(encoder, config, [(k, plan[k]) for k in pending], raw, out, on_items)
    distributed.barrier()  # every rank's shards are written

    shards = [
        {
            "file": shard_name(k),
            "items": shard.num_rows,
            "first_item_idx": shard["item_idx"][0].as_py(),
            "last_item_idx": shard["item_idx"][-1].as_py(),
        }
        for k, shard in enumerate(plan)
    ]
    manifest = Manifest(identity, shards, complete=True)
    if rank == 0:
        manifest.write(out)
    distributed.barrier()  # no rank returns before the store is complete
    return manifest


def claim(out: Path, identity: FeatureIdentity, force: bool, write: bool = True) -> None:
    """Make `out` a store of `identity`: keep a matching one (to resume), refuse or clear another.

    Every rank checks (so every rank refuses alike); only the one that may `write` changes files.
    """
    existing = Manifest.read(out)
    replace = existing is not None and existing.identity != identity
    if existing is not None and replace and not force:
        changes = "; ".join(identity.differences(existing.identity))
        raise InputError(
            f"{out / MANIFEST_FILE}: these features were built differently ({changes}). Mixing them is refused: "
            "re-run with --force to replace them, or write to another --out."
        )
    if not write:
        return
    if replace:
        log.warning("%s: replacing features built differently (--force)", out)
        for stale in out.glob("shard-*.h5"):
            stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".*.tmp-*"):  # a run killed with -9 leaves its half-written shard here
        leftover.unlink()
    Manifest(identity).write(out)


def finished(path: Path, shard: pa.Table) -> bool:
    """A shard file exists only once complete (atomic rename); check it holds the planned items."""
    if not path.is_file():
        return False
    if not np.array_equal(read_item_idx(path), shard["item_idx"].to_numpy()):
        raise InputError(f"{path}: holds other items than planned. Delete {path.parent} and run `odmt extract` again.")
    return True


def encode_shards(
    encoder: Encoder,
    config: ExtractConfig,
    shards: list[tuple[int, pa.Table]],
    raw: Path,
    out: Path,
    on_items: Callable[[int], None],
) -> None:
    """Run the frozen encoder over the pending shards, batch by batch, writing each shard when it fills."""
    tables = [table for _, table in shards]
    dataset = encoder.dataset(pa.concat_tables(tables), raw)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=list(batches_within_shards([t.num_rows for t in tables], config.batch_size)),
        collate_fn=encoder.collate,
        num_workers=encoder.loader_workers,
        worker_init_fn=single_thread_worker,
    )
    batches = iter(loader)
    for index, table in shards:
        start, parts = time.perf_counter(), []
        for _ in range(math.ceil(table.num_rows / config.batch_size)):  # batches never straddle shards
            item_idx, inputs = next(batches)
            with torch.inference_mode(), autocast(encoder.device, config.precision):
                tokens, mask = encoder(inputs)
            parts.append((item_idx.numpy(), tokens.float().cpu().numpy(), None if mask is None else mask.cpu().numpy()))
            on_items(len(item_idx))
        ids, tokens_of_batches, masks_of_batches = zip(*parts)
        item_ids, encoded = np.concatenate(ids), np.concatenate(tokens_of_batches)
        masks = None if masks_of_batches[0] is None else np.concatenate(masks_of_batches)
        with np.errstate(over="ignore"):  # a value beyond float16's range is infinite as stored: refused just below
            stored = encoded.astype(TOKEN_DTYPE)
        row = first_non_finite(stored)
        if row is not None:
            item = f"item_idx {item_ids[row]} (item_id {table['item_id'][row].as_py()})"
            raise InputError(
                f"{encoder.name}: encoded {item} to NaN or infinite values, so {out / shard_name(index)} is not "
                "written; run with -S extract.precision=fp32, or check the encoder."
            )
        write_shard(out / shard_name(index), item_ids, stored, masks)
        seconds = time.perf_counter() - start
        log.info("%s: %d items, %.1f items/s", shard_name(index), table.num_rows, table.num_rows / seconds)


def batches_within_shards(sizes: list[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches over the concatenated shards that never straddle a shard boundary."""
    offset = 0
    for size in sizes:
        for start in range(0, size, batch_size):
            yield list(range(offset + start, offset + min(start + batch_size, size)))
        offset += size
