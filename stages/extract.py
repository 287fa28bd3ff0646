"""`odmt extract`: processed items -> features/<modality>/ HDF5 shards of frozen encoder tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from pipeline.artifacts import check_output
from pipeline.capacity import require_disk
from pipeline.dataset.processed import ITEMS_FILE
from pipeline.features.config import Modality
from stages.common import Overrides, ParamsFile, echo, params, parquet_rows, progress_bar, run_alone, stage


def extract(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    raw: Annotated[Path, typer.Option(help="Raw folder the items' image paths are relative to.")],
    out: Annotated[Path, typer.Option(help="Features folder: writes <out>/text and <out>/image.")],
    modality: Annotated[Literal["all", "text", "image"], typer.Option(help="Which features to extract.")] = "all",
    force: Annotated[bool, typer.Option(help="Replace features built from another encoder or items table.")] = False,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Run the frozen text and image encoders once; an interrupted run resumes where it stopped."""
    from pipeline.features.extract import extract as extract_features  # torch and transformers load here only
    from pipeline.features.extract import load_encoder
    from pipeline.features.store import TOKEN_DTYPE

    with stage(f"extract {modality}"):
        names: tuple[Modality, ...] = ("text", "image") if modality == "all" else (modality,)
        config = params(params_file, overrides).extract
        for name in names:
            check_output(out / name, folder=True)
        total = parquet_rows(processed / ITEMS_FILE)
        encoders = {name: load_encoder(name, config) for name in names}  # their token counts and widths size the stores
        needed = total * sum(encoder.L * encoder.d for encoder in encoders.values()) * np.dtype(TOKEN_DTYPE).itemsize
        written = sum(shard.stat().st_size for name in names for shard in (out / name).glob("shard-*.h5"))  # resumed
        require_disk(
            out,
            needed - written,
            f"{out}: the {' and '.join(names)} features of {total} items",
            "extract.text.max_tokens or extract.image.pool_grid",
        )
        for name, encoder in encoders.items():
            with progress_bar(f"{name} features", total) as advance:
                manifest = extract_features(name, processed, raw, out / name, config, force, advance, encoder)
            identity = manifest.identity
            echo(
                f"{name}: {sum(s['items'] for s in manifest.shards)} items x {identity.L} tokens x "
                f"{identity.d} dims from {identity.encoder} -> {out / name}"
            )


if __name__ == "__main__":  # torchrun --nproc_per_node N -m stages.extract ... (`odmt extract` works under torchrun --no-python too)
    run_alone(extract)
