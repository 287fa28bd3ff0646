"""`odmt train`: processed/ + features/ -> runs/<model>/ (config.json, best.safetensors, last.safetensors, train_log.tsv)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from pipeline.artifacts import check_output
from pipeline.models.config import ModelName
from stages.common import Overrides, ParamsFile, echo, params, parquet_rows, progress_bar, run_alone, stage


def train(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    features: Annotated[Path, typer.Option(help="Features folder written by `odmt extract` (text/, image/).")],
    out: Annotated[Path, typer.Option(help="Run folder to write.")],
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last.safetensors.")] = False,
    model: Annotated[
        str | None,
        typer.Option(help=f"{', '.join(get_args(ModelName))} (= -S model.name=...; docs/model.md)."),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="A run of params.yaml's experiments.runs: apply its changes before -S.")] = None,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Train a model (ODMT by default), selecting best.safetensors on validation (the test target is never read)."""
    from pipeline.dataset.processed import SEQUENCES_FILE
    from pipeline.training.loop import train as train_model  # torch loads here only

    with stage("train"):
        settings = params(params_file, [*(overrides or []), *([f"model.name={model}"] if model else [])], experiment)
        check_output(out, folder=True)  # --resume writes into the run folder it continues
        users = parquet_rows(processed / SEQUENCES_FILE)
        with progress_bar("training sequences", users * settings.train.epochs) as advance:
            rows = train_model(processed, features, out, settings.model, settings.train, resume, advance)
        best = max(rows, key=lambda row: row[f"valid_recall@{settings.train.selection_k}"])
        echo(f"best epoch {best['epoch']}: " + ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k.startswith("valid_")))


if __name__ == "__main__":  # torchrun --nproc_per_node N -m stages.train ... (`odmt train` works under torchrun --no-python too)
    run_alone(train)
