"""`odmt report`: runs/ and metrics/ of every evaluated run -> reports/ (report.md, PNG figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from stages.common import Overrides, ParamsFile, params, stage


def report(
    runs: Annotated[Path, typer.Option(help="Folder of run folders written by `odmt train` (data/<dataset>/runs).")],
    metrics: Annotated[Path, typer.Option(help="Folder of metrics folders written by `odmt evaluate`, same run names.")],
    out: Annotated[Path, typer.Option(help="Reports folder to write (report.md and PNG figures).")],
    dataset: Annotated[str | None, typer.Option(help="Dataset name for the title; default: the folder above --runs.")] = None,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """The paper's tables (overall, per branch, ablations) and figures across every evaluated run, with intervals and paired tests."""
    from pipeline.reporting.report import report as write_report  # matplotlib loads here only
    from pipeline.reporting.report import timing_table

    with stage("report"):
        config = params(params_file, overrides).report
        check_output(out, folder=True)
        typer.echo(write_report(runs, metrics, out, config, dataset))
        typer.echo(timing_table(runs))  # on the console only: report.md stays a function of the results
