"""`odmt evaluate`: runs/<model>/best.safetensors -> metrics/<model>/ (metrics.json, ranks.parquet, user_metrics.parquet,
popularity_groups.tsv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from pipeline.capacity import require_disk
from pipeline.dataset.processed import SEQUENCES_FILE
from stages.common import Overrides, ParamsFile, params, parquet_rows, print_counts, stage

# A user's rows of one split, uncompressed, bounded above: ranks.parquet (the user id and every scorer's rank) and
# user_metrics.parquet (a row per scorer, at most 5, each with every Recall@k and NDCG@k).
RANKS_ROW_BYTES = 256 + 5 * 256


def evaluate(
    run: Annotated[Path, typer.Option(help="Run folder written by `odmt train` (its best.safetensors is evaluated).")],
    processed: Annotated[Path, typer.Option(help="Processed folder the run was trained on.")],
    features: Annotated[Path, typer.Option(help="Features folder the run was trained on.")],
    out: Annotated[Path, typer.Option(help="Metrics folder to write.")],
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Full-ranking Recall@k and NDCG@k of the selected checkpoint on valid and test."""
    from pipeline.evaluation.evaluate import evaluate as evaluate_run  # torch loads here only

    with stage("evaluate"):
        config = params(params_file, overrides).evaluate
        check_output(out, folder=True)
        users = parquet_rows(processed / SEQUENCES_FILE)
        require_disk(
            out,
            2 * users * RANKS_ROW_BYTES,
            f"{out}: the valid and test ranks and metrics of {users} users",
            "evaluate.each_branch to false (a rank column per branch)",
        )
        metrics = evaluate_run(run, processed, features, out, config)
        print_counts(f"full ranking over {metrics['items']} items, {metrics['users']} users", metrics)
