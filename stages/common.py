"""What every stage command shares: the params options and the error/timing edge."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pipeline.config import Params, load_params
from pipeline.errors import InputError
from pipeline.runtime import cluster

log = logging.getLogger("odmt")
console = Console(stderr=True)

ParamsFile = Annotated[Path, typer.Option("--params", help="The params.yaml to read.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override one parameter, YAML-typed: -S prepare.min_user_interactions=3"),
]


def params(path: Path, overrides: Iterable[str] | None, experiment: str | None = None) -> Params:
    return load_params(path, overrides or (), experiment)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Run one stage: logging on, bad input reported without a traceback (exit 2), time and memory logged."""
    if not logging.getLogger().handlers:  # under torchrun only rank 0 reports; the others warn and fail loudly
        level = logging.INFO if cluster().leader else logging.WARNING
        logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console)])
    start = time.perf_counter()
    try:
        yield
    except InputError as error:
        console.print(f"error in {name}: {error}", style="red", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("%s done in %.1f s, peak memory %.0f MiB", name, time.perf_counter() - start, peak_mib)


def echo(message: str) -> None:
    """A stage's result line on stdout, once: under torchrun rank 0 alone prints it."""
    if cluster().leader:
        typer.echo(message)


def print_counts(title: str, counts: dict[str, Any]) -> None:
    """The non-zero counts of a (nested) report as a two-column table on stdout."""
    table = Table(title=title, show_header=False)
    for key, value in flatten(counts).items():
        if value:
            table.add_row(key, str(value))
    Console(file=sys.stdout).print(table)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class ItemsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:.1f} items/s")


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`: a rich bar with items/s on rank 0's terminal; silent otherwise (the library logs)."""
    if not console.is_terminal or not cluster().leader:
        yield lambda n: None
        return
    with Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), ItemsPerSecond(), TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
