"""`odmt sample hm`: cut the small, real embedded sample out of a larger raw folder.
`odmt sample hm-layout`: a generated raw H&M folder of the full download's size (pipeline/synthetic/hm_layout.py).
`odmt sample synthetic`: a processed dataset with a known, ID-learnable structure (pipeline/synthetic/dataset.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from pipeline.synthetic.hm_layout import write_hm_layout
from pipeline.synthetic.hm_subset import write_hm_subset
from stages.common import command_group, print_counts, stage

app = command_group("Cut a small real subset out of a raw dataset (see data/raw/*/README.md), or make a synthetic one.")


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
        check_output(out, folder=True)
        print_counts("subset", write_hm_subset(source, out, customers, rows_per_customer, min_interactions))


@app.command("hm-layout")
def hm_layout(
    out: Annotated[Path, typer.Option(help="Folder to write the raw Kaggle layout to.")],
    transactions: Annotated[int, typer.Option(help="Rows of transactions_train.csv (the full download's).")] = 31788324,
    articles: Annotated[int, typer.Option(help="Rows of articles.csv, each with a photo but a few.")] = 105542,
    customers: Annotated[int, typer.Option(help="Distinct customers; each buys at least once.")] = 1371980,
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 0,
) -> None:
    """H&M at the full download's size, generated: to measure ingest and prepare without the 30 GB download."""
    with stage("sample hm-layout"):
        check_output(out, folder=True)
        print_counts("hm-layout", write_hm_layout(out, transactions, articles, customers, seed))


@app.command("synthetic")
def synthetic(
    out: Annotated[Path, typer.Option(help="Folder to write processed/ and features/ (random) to.")],
    users: Annotated[int, typer.Option(help="Users, each with --length interactions.")] = 943,
    items: Annotated[int, typer.Option(help="Catalogue size before items never drawn are dropped.")] = 1305,
    length: Annotated[int, typer.Option(help="Interactions per user (no repeats).")] = 15,
    genres: Annotated[int, typer.Option(help="Genres, each an ordered series of items.")] = 20,
    follow: Annotated[float, typer.Option(help="Chance the next item continues the last item's series.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 0,
    image_tokens: Annotated[int, typer.Option(help="Random image tokens per item (the paper's features: 50).")] = 2,
    text_tokens: Annotated[int, typer.Option(help="Random text tokens per item (the paper's features: 30).")] = 2,
    feature_dim: Annotated[int, typer.Option(help="Width of every random token (the paper's features: 384).")] = 8,
) -> None:
    """MovieLens-100k-sized sequences whose next item an ID model can learn: where a trainer must beat Pop."""
    from pipeline.synthetic.dataset import FeatureShapes, write_synthetic  # torch and h5py load here only

    with stage("sample synthetic"):
        check_output(out, folder=True)
        shapes = FeatureShapes(image_tokens, text_tokens, feature_dim)
        print_counts("synthetic", write_synthetic(out, users, items, length, genres, follow, seed, shapes))
