"""The `odmt` command: one subcommand per pipeline stage (docs/design.md)."""

from __future__ import annotations

import typer

from stages import bench, case_study, compare, evaluate, export, extract, ingest, prepare, recommend, report, sample, train, tuning

app = typer.Typer(
    help="ODMT pipeline: ingest -> prepare -> extract -> train -> evaluate -> report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help as written: rich markup would swallow `[peers]`
)
app.add_typer(ingest.app, name="ingest")
app.command("prepare")(prepare.prepare)
app.command("tuning-set")(tuning.tuning_set)
app.command("extract")(extract.extract)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("report")(report.report)
app.command("recommend")(recommend.recommend)
app.command("case-study")(case_study.case_study)
app.add_typer(export.app, name="export")
app.add_typer(compare.app, name="compare")
app.add_typer(sample.app, name="sample")
app.add_typer(bench.app, name="bench")

if __name__ == "__main__":
    app()
