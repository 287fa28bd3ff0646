"""`odmt extract`: processed items -> features/<modality>/ HDF5 shards of frozen encoder tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pyarrow.parquet as pq
import typer

from stages.common import Overrides, ParamsFile, echo, params, progress_bar, stage


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

    with stage(f"extract {modality}"):
        config = params(params_file, overrides).extract
        total = pq.read_metadata(processed / "items.parquet").num_rows if (processed / "items.parquet").is_file() else 0
        for name in ("text", "image") if modality == "all" else (modality,):
            with progress_bar(f"{name} features", total) as advance:
                manifest = extract_features(name, processed, raw, out / name, config, force, advance)
            identity = manifest.identity
            echo(f"{name}: {sum(s['items'] for s in manifest.shards)} items x {identity.L} tokens x "
                 f"{identity.d} dims from {identity.encoder} -> {out / name}")


if __name__ == "__main__":  # torchrun --nproc_per_node N -m stages.extract ... (`odmt extract` works under torchrun --no-python too)
    typer.run(extract)
