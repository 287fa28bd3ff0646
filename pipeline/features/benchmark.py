"""How fast is extraction, and how much of its time is the encoder itself?

Runs the real pipeline (`extract`) on the first `items` items into a temporary folder,
then the bare encoder forward pass on the very same batches, already decoded and held
in memory. Their ratio is the pipeline's overhead (decoding, tokenising, HDF5 writes
not hidden behind the forward pass); 1.0 means none.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch

from pipeline.dataset.processed import ITEMS_FILE
from pipeline.features.config import ExtractConfig, Modality
from pipeline.features.extract import Encoder, extract, load_encoder
from pipeline.runtime import autocast, set_cpu_threads


def benchmark_extract(modality: Modality, processed: Path, raw: Path, config: ExtractConfig, items: int) -> dict[str, Any]:
    """items/s of the pipeline and of the bare forward pass, their ratio, peak memory and bytes per item."""
    set_cpu_threads(config.cpu_threads)
    table = pq.read_table(processed / ITEMS_FILE).slice(0, items)
    with tempfile.TemporaryDirectory() as scratch:
        subset = Path(scratch) / "processed"
        subset.mkdir()
        pq.write_table(table, subset / ITEMS_FILE)
        encoder = load_encoder(modality, config)  # loaded before timing, like the forward-only run below
        dataset: Any = encoder.dataset(table, raw)  # texts or images, as this encoder's collate takes them
        batches = [
            encoder.collate([dataset[i] for i in range(start, min(start + config.batch_size, len(dataset)))])[1]
            for start in range(0, len(dataset), config.batch_size)
        ]
        forward(encoder, batches[:1], config)  # warm-up: first-call kernel setup is not the pipeline's cost
        start = time.perf_counter()
        extract(modality, subset, raw, Path(scratch) / modality, config, encoder=encoder)
        pipeline_seconds = time.perf_counter() - start
        stored = sum(path.stat().st_size for path in (Path(scratch) / modality).glob("shard-*.h5"))

    forward_seconds = forward(encoder, batches, config)
    return {
        "modality": modality,
        "encoder": encoder.name,
        "device": str(encoder.device),
        "items": table.num_rows,
        "pipeline_items_per_s": round(table.num_rows / pipeline_seconds, 1),
        "forward_items_per_s": round(table.num_rows / forward_seconds, 1),
        "overhead_ratio": round(pipeline_seconds / forward_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20) if encoder.device.type == "cuda" else None,
        "bytes_per_item": round(stored / table.num_rows),
    }


def forward(encoder: Encoder, batches: list[Any], config: ExtractConfig) -> float:
    """Seconds the bare frozen forward pass takes over `batches`."""
    start = time.perf_counter()
    with torch.inference_mode(), autocast(encoder.device, config.precision):
        for inputs in batches:
            encoder(inputs)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
