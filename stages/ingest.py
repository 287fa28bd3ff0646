"""`odmt ingest <source>`: a raw dump -> interim/ (interactions, items, ingest_report.json).

One command per reader of pipeline/formats, all alike: the raw folder in, the interim
folder out, the reader's settings from `ingest.<source>` in params.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.artifacts import check_output
from pipeline.formats.amazon import ingest_amazon
from pipeline.formats.hm import ingest_hm
from pipeline.formats.microlens import ingest_microlens
from pipeline.formats.odmt_tsv import ingest_odmt_tsv
from pipeline.formats.recbole import ingest_recbole
from stages.common import Overrides, ParamsFile, command_group, params, print_counts, stage

app = command_group("Read a raw dataset into the canonical interim tables.")

Reader = Callable[[Path, Path, Any], dict[str, Any]]
SOURCES: dict[str, tuple[Reader, str, str]] = {  # command: reader, params section, what the raw folder holds
    "hm": (
        ingest_hm,
        "hm",
        "H&M Personalized Fashion Recommendations (Kaggle): transactions_train.csv, "
        "articles.csv, images/<first 3 digits>/<article_id>.jpg.",
    ),
    "amazon": (
        ingest_amazon,
        "amazon",
        "Amazon reviews 2018 (or 2014): <Category>.json[.gz] and meta_<Category>.json[.gz], photos in images/<asin>.jpg.",
    ),
    "microlens": (
        ingest_microlens,
        "microlens",
        "MicroLens (the paper's Stream): *_pairs.csv or *_pairs.tsv, *_titles.csv or *_title_en.csv, *_covers/<item>.jpg.",
    ),
    "recbole": (ingest_recbole, "recbole", "RecBole atomic files: <name>.inter, <name>.item, images/<item_id>.jpg."),
    "odmt-tsv": (
        ingest_odmt_tsv,
        "odmt_tsv",
        "The ODMT authors' processed data: {tag}_user_behaviours.tsv, {tag}_text.tsv, {tag}_image.lmdb.",
    ),
}


def ingest_command(source: str, read: Reader, section: str, layout: str) -> Callable[..., None]:
    def ingest(
        raw: Annotated[Path, typer.Option(help="The raw folder, as downloaded (its layout: docs/cli.md).")],
        out: Annotated[Path, typer.Option(help="Interim folder to write.")],
        params_file: ParamsFile = Path("params.yaml"),
        overrides: Overrides = None,
    ) -> None:
        with stage(f"ingest {source}"):
            config = getattr(params(params_file, overrides).ingest, section)
            check_output(out, folder=True)
            report = read(raw, out, config)
            for name, counts in report["files"].items():
                print_counts(name, counts)

    ingest.__doc__ = layout
    return ingest


for source, (read, section, layout) in SOURCES.items():
    app.command(source)(ingest_command(source, read, section, layout))
