"""`odmt ingest <source>`: a raw dump -> interim/ (interactions, items, ingest_report.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.formats.hm import ingest_hm
from stages.common import Overrides, ParamsFile, params, print_counts, stage

app = typer.Typer(help="Read a raw dataset into the canonical interim tables.", no_args_is_help=True)


@app.command("hm")
def hm(
    raw: Annotated[Path, typer.Option(help="Folder in the Kaggle layout: transactions_train.csv, articles.csv, images/.")],
    out: Annotated[Path, typer.Option(help="Interim folder to write.")],
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """H&M Personalized Fashion Recommendations (Kaggle)."""
    with stage("ingest hm"):
        report = ingest_hm(raw, out, params(params_file, overrides).ingest.hm)
        for name, counts in report["files"].items():
            print_counts(name, counts)
