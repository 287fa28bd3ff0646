"""`odmt compare <peer>`: our models beside the field's standard library's, on the same split and evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from stages.common import Overrides, ParamsFile, command_group, echo, params, stage

app = command_group("Train a peer library's models and ours on one split; rank both with our evaluator.")


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
        settings = params(params_file, overrides)
        check_output(out, folder=True)
        compare_recbole(processed, features, out, settings)
        echo((out / "comparison.md").read_text(encoding="utf-8"))
