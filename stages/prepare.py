"""`odmt prepare`: interim/ -> processed/ (filters, re-index, the split, stats.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from pipeline.dataset.prepare import prepare as prepare_dataset
from stages.common import Overrides, ParamsFile, params, print_counts, stage


def prepare(
    interim: Annotated[Path, typer.Option(help="Interim folder written by `odmt ingest`.")],
    raw: Annotated[Path, typer.Option(help="Raw folder the items' image paths are relative to.")],
    out: Annotated[Path, typer.Option(help="Processed folder to write.")],
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Apply the paper's filters and the split (`prepare.split`: leave-one-out or temporal)."""
    with stage("prepare"):
        config = params(params_file, overrides).prepare
        check_output(out, folder=True)
        stats = prepare_dataset(interim, raw, out, config)
        print_counts("processed: the paper's Table 1 row and every drop", stats)
