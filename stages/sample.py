"""`odmt sample hm`: cut the small, real embedded sample out of a larger raw folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.formats.hm_subset import write_hm_subset
from stages.common import print_counts, stage

app = typer.Typer(help="Cut a small real subset out of a raw dataset (see data/raw/*/README.md).", no_args_is_help=True)


@app.command("hm")
def hm(
    source: Annotated[Path, typer.Option(help="H&M folder in the Kaggle layout to cut from.")],
    out: Annotated[Path, typer.Option(help="Folder to write the subset to, in the same layout.")],
    customers: Annotated[int, typer.Option(help="How many qualifying customers to keep.")] = 72,
    rows_per_customer: Annotated[int, typer.Option(help="Each customer's last transaction rows kept.")] = 20,
    min_interactions: Annotated[int, typer.Option(help="Transactions with text and photo a customer needs.")] = 5,
) -> None:
    """H&M: customers in SHA-256 order of their id, with their last rows, articles and photos."""
    with stage("sample hm"):
        print_counts("subset", write_hm_subset(source, out, customers, rows_per_customer, min_interactions))
