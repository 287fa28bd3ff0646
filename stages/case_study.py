"""`odmt case-study`: a trained run's top-k per scorer for a few test users, with photos and titles, as one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from stages.common import Overrides, ParamsFile, echo, params, stage


def case_study(
    run: Annotated[Path, typer.Option(help="Run folder written by `odmt train` (its best.safetensors ranks).")],
    processed: Annotated[Path, typer.Option(help="Processed folder the run was trained on.")],
    features: Annotated[Path, typer.Option(help="Features folder the run was trained on.")],
    raw: Annotated[Path, typer.Option(help="Raw folder the processed data was prepared from (the photos).")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    users: Annotated[int | None, typer.Option(help="Test users on the page (= -S case_study.users=N).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the draw of those users (= -S case_study.seed=S).")] = None,
    params_file: ParamsFile = Path("params.yaml"),
    overrides: Overrides = None,
) -> None:
    """A page of a few test users: their history, the test item, and each scorer's top k (the ensemble and every branch)."""
    from pipeline.evaluation.case_study import case_study as study_users  # torch loads here only
    from pipeline.evaluation.case_study_page import write_page

    with stage("case-study"):
        options = [
            *([f"case_study.users={users}"] if users is not None else []),
            *([f"case_study.seed={seed}"] if seed is not None else []),
        ]
        settings = params(params_file, [*(overrides or []), *options])
        check_output(out, folder=False)
        study = study_users(run, processed, features, raw, settings.case_study, settings.evaluate)
        size = write_page(study, out, settings.case_study)
        hits = {name: sum(case.target_rank[name] <= study.k for case in study.cases) for name in study.scorers}
        echo(
            f"{len(study.cases)} of {study.users} test users (seed {study.seed}), target in the top {study.k}: "
            + ", ".join(f"{name} {hit}" for name, hit in hits.items())
            + f" -> {out} ({size / 1024:.0f} KiB)"
        )
