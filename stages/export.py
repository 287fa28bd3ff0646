"""`odmt export <format>`: processed/ -> the files another toolkit reads, to compare on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from pipeline.dataset.export import export_recbole
from stages.common import command_group, print_counts, stage

app = command_group("Write the processed dataset in another toolkit's format.")


@app.command("recbole")
def recbole(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    out: Annotated[Path, typer.Option(help="Folder to write <name>.inter and <name>.item to: RecBole's <data_path>/<name>.")],
    name: Annotated[str | None, typer.Option(help="RecBole dataset name, the files' stem. Default: the --out folder's name.")] = None,
) -> None:
    """RecBole atomic files: the same users, items and order, the same leave-one-out split under eval_args LS/TO."""
    with stage("export recbole"):
        check_output(out, folder=True)
        print_counts("written", export_recbole(processed, out, name or out.name))
