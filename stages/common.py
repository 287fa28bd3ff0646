"""What every stage command shares: the params options, the error/timing edge and literal console output.

User data (item titles, ids, file names) and messages reach the terminal as written: rich's
markup, emoji codes and highlighting are off everywhere, so `[b]`, `[/red]` or `:train:`
print as text instead of vanishing or crashing.
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pipeline.artifacts import file_system_error
from pipeline.config import Params, load_params
from pipeline.errors import InputError
from pipeline.runtime import cluster

log = logging.getLogger("odmt")
LITERAL: dict[str, Any] = {"markup": False, "emoji": False, "highlight": False}
console = Console(stderr=True, **LITERAL)
stdout = Console(**LITERAL)  # no file given: it writes to sys.stdout as it is at print time (CliRunner swaps it)

ParamsFile = Annotated[Path, typer.Option("--params", help="The params.yaml to read.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override one parameter, YAML-typed: -S prepare.min_user_interactions=3"),
]


def command_group(help: str) -> typer.Typer:
    """A sub-command group whose help prints as written (typer's rich markup would swallow `[peers]`)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def run_alone(command: Callable[..., None]) -> None:
    """`typer.run` for a stage started as a module (torchrun -m stages.train), with literal help."""
    app = typer.Typer(add_completion=False, rich_markup_mode=None)
    app.command()(command)
    app()


def parquet_rows(path: Path) -> int:
    """Rows of a parquet file, read from its footer: 0 when it is absent (the stage's library call then names it)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows if path.is_file() else 0


def params(path: Path, overrides: Iterable[str] | None, experiment: str | None = None) -> Params:
    return load_params(path, overrides or (), experiment)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Run one stage: logging on, bad input and file-system failures reported as one sentence without a
    traceback (exit 2), time and memory logged."""
    if not logging.getLogger().handlers:  # under torchrun only rank 0 reports; the others warn and fail loudly
        level = logging.INFO if cluster().leader else logging.WARNING
        handler = RichHandler(console=console, markup=False)  # log messages carry user data: never markup
        logging.basicConfig(level=level, format="%(message)s", handlers=[handler])
    start = time.perf_counter()
    try:
        yield
    except InputError as error:
        fail(name, error)
    except OSError as error:  # a full disk, a read-only file system, a folder where a file goes, ...
        if error.errno == errno.EPIPE:  # the reader of stdout left (`odmt report ... | head`): typer exits quietly
            raise
        fail(name, file_system_error(error))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("%s done in %.1f s, peak memory %.0f MiB", name, time.perf_counter() - start, peak_mib)


def fail(name: str, error: InputError) -> NoReturn:
    """Report a stage's error as its one line (never wrapped inside a path) and exit 2."""
    console.print(f"error in {name}: {error}", style="red", soft_wrap=True)
    raise typer.Exit(code=2) from None


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
    stdout.print(table)


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
        TextColumn(description, markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        ItemsPerSecond(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
