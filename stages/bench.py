"""`odmt bench <stage>`: benchmarks that print numbers (never timed assertions in tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from stages.common import Overrides, ParamsFile, command_group, params, print_counts, stage

app = command_group("Measure speed and memory of a stage.")


@app.command("extract")
def extract(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    raw: Annotated[Path, typer.Option(help="Raw folder the items' image paths are relative to.")],
    items: Annotated[int, typer.Option(help="How many items to extract (the first ones).")] = 256,
    modality: Annotated[Literal["all", "text", "image"], typer.Option(help="Which encoder to measure.")] = "all",
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """items/s of extraction and of the bare encoder forward pass on the same batches, peak memory."""
    from pipeline.features.benchmark import benchmark_extract

    with stage("bench extract"):
        config = params(params_file, overrides).extract
        for name in ("text", "image") if modality == "all" else (modality,):
            print_counts(f"extract {name}", benchmark_extract(name, processed, raw, config, items))


@app.command("train")
def train(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    features: Annotated[Path, typer.Option(help="Features folder written by `odmt extract`.")],
    steps: Annotated[int, typer.Option(help="Training steps to time (batches of train.batch_size).")] = 3,
    distinct_items: Annotated[
        int | None, typer.Option(help="Draw full batches from this many random items instead of the users' sequences.")
    ] = None,
    profile: Annotated[bool, typer.Option(help="Where the steps' time goes (operators by part of the step) instead.")] = False,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Training sequences/s and validation items/s, with and without per-step item de-duplication; or a profile of the step."""
    from pipeline.training.benchmark import benchmark_train, profile_train

    with stage("bench train"):
        settings = params(params_file, overrides)
        if profile:
            result = profile_train(processed, features, settings.model, settings.train, steps, distinct_items)
            parts, wall = result.pop("parts_ms"), result["wall_ms"]
            rest = sum(ms for ms in parts.values() if ms < 0.01 * wall)
            shown = {part: ms for part, ms in parts.items() if ms >= 0.01 * wall} | {"the rest (each under 1%)": rest}
            print_counts("milliseconds of a step, by part", {part: f"{ms:.1f} ({ms / wall:.0%})" for part, ms in shown.items()})
            print_counts("the step", result)
            return
        for row in benchmark_train(processed, features, settings.model, settings.train, steps, distinct_items):
            print_counts(f"train, deduplicate_items={row['deduplicate_items']}", row)


@app.command("evaluate")
def evaluate(
    items: Annotated[list[int], typer.Option(help="Catalogue sizes to measure; repeat the option.")] = [1_000, 10_000],  # noqa: B006
    users: Annotated[int, typer.Option(help="Users ranked at each size.")] = 2048,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """Full-ranking evaluation as the item count grows: items/s encoded, users/s ranked, peak memory."""
    from pipeline.evaluation.benchmark import benchmark_evaluate

    with stage("bench evaluate"):
        settings = params(params_file, overrides)
        for row in benchmark_evaluate(settings.model, settings.evaluate, items, users):
            print_counts(f"evaluate, {row['items']} items", row)


@app.command("ingest")
def ingest(
    lines: Annotated[int, typer.Option(help="Reviews in the synthetic Amazon 2018 category file.")] = 100_000,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """`odmt ingest amazon` on a synthetic gzipped category (ingest.amazon parameters): rows/s and peak memory."""
    from pipeline.synthetic.amazon_category import benchmark_ingest

    with stage("bench ingest"):
        print_counts("ingest amazon", benchmark_ingest(lines, params(params_file, overrides).ingest.amazon))
