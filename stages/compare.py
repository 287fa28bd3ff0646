"""`odmt compare <peer>`: our models beside the field's standard library's, on the same split and evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import Overrides, ParamsFile, echo, params, stage

app = typer.Typer(help="Train a peer library's models and ours on one split; rank both with our evaluator.", no_args_is_help=True)


@app.command("recbole")
def recbole(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    features: Annotated[Path, typer.Option(help="Features folder written by `odmt extract` (our models read it).")],
    out: Annotated[Path, typer.Option(help="Folder for the runs and comparison.md / comparison.json.")],
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """RecBole's SASRec, GRU4Rec and NextItNet (pip install -e '.[peers]') and ours, x seeds, side by side."""
    from pipeline.peers.compare import compare_recbole  # torch and RecBole load here only

    with stage("compare recbole"):
        compare_recbole(processed, features, out, params(params_file, overrides))
        echo((out / "comparison.md").read_text(encoding="utf-8"))
