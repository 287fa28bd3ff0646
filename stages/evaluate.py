"""`odmt evaluate`: runs/<model>/best.pt -> metrics/<model>/ (metrics.json, ranks.parquet, popularity_groups.tsv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import Overrides, ParamsFile, params, print_counts, stage


def evaluate(
    run: Annotated[Path, typer.Option(help="Run folder written by `odmt train` (its best.pt is evaluated).")],
    processed: Annotated[Path, typer.Option(help="Processed folder the run was trained on.")],
    features: Annotated[Path, typer.Option(help="Features folder the run was trained on.")],
    out: Annotated[Path, typer.Option(help="Metrics folder to write.")],
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Full-ranking Recall@k and NDCG@k of the selected checkpoint on valid and test."""
    from pipeline.evaluation.evaluate import evaluate as evaluate_run  # torch loads here only

    with stage("evaluate"):
        metrics = evaluate_run(run, processed, features, out, params(params_file, overrides).evaluate)
        print_counts(f"full ranking over {metrics['items']} items, {metrics['users']} users", metrics)
