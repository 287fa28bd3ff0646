"""`odmt recommend`: top-k items from a trained run, printed as a table or written to parquet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from stages.common import Overrides, ParamsFile, params, stage


def recommend(
    run: Annotated[Path, typer.Option(help="Run folder written by `odmt train` (its best.pt recommends).")],
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
    from pipeline.artifacts import write_parquet
    from pipeline.evaluation.recommend import recommend as recommend_items  # torch loads here only

    with stage("recommend"):
        table = recommend_items(run, processed, features, k, params(params_file, overrides).evaluate, user, history)
        if out is not None:
            write_parquet(out, table)
            typer.echo(f"{table.num_rows} recommendations -> {out}")
            return
        shown = Table(Column("user", overflow="fold"), "rank", Column("item", no_wrap=True), "score", "text")
        for row in table.to_pylist():
            shown.add_row(row["user_id"], str(row["rank"]), row["item_id"], f"{row['score']:.3f}", row["text"] or "")
        Console(file=sys.stdout).print(shown)
