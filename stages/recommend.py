"""`odmt recommend`: top-k items from a trained run, printed as a table or written to parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.artifacts import check_output, write_parquet
from stages.common import Overrides, ParamsFile, params, stage, stdout


def recommend(
    run: Annotated[Path, typer.Option(help="Run folder written by `odmt train` (its best.safetensors recommends).")],
    processed: Annotated[Path, typer.Option(help="Processed folder the run was trained on.")],
    features: Annotated[Path, typer.Option(help="Features folder the run was trained on.")],
    user: Annotated[list[str] | None, typer.Option(help="A user id; repeat for several. None: every user.")] = None,
    history: Annotated[
        list[str] | None, typer.Option(help="Item ids of a user unknown to the run, oldest first; repeat the option.")
    ] = None,
    k: Annotated[int, typer.Option(help="Items per user.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write parquet here instead of printing a table.")] = None,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Top-k items per user (history excluded, as `evaluate.exclude_history` says)."""
    from pipeline.evaluation.recommend import recommend as recommend_items  # torch loads here only

    with stage("recommend"):
        config = params(params_file, overrides).evaluate
        if out is not None:
            check_output(out, folder=False)
        table = recommend_items(run, processed, features, k, config, user, history)
        if out is not None:
            write_parquet(out, table)
            typer.echo(f"{table.num_rows} recommendations -> {out}")
            return
        shown = Table(Column("user", overflow="fold"), "rank", Column("item", no_wrap=True), "score", "text")
        for row in table.to_pylist():  # ids and titles are data: Text, never markup
            shown.add_row(Text(row["user_id"]), str(row["rank"]), Text(row["item_id"]), f"{row['score']:.3f}", Text(row["text"] or ""))
        stdout.print(shown)
