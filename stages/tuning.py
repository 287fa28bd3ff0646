"""`odmt tuning-set`: processed/ -> a processed set without the test interactions, to choose recipes on
(pipeline/dataset/tuning.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.artifacts import check_output
from pipeline.dataset.tuning import write_tuning_set
from stages.common import print_counts, stage


def tuning_set(
    processed: Annotated[Path, typer.Option(help="Processed folder written by `odmt prepare`.")],
    out: Annotated[Path, typer.Option(help="Folder to write the tuning set to (the processed layout).")],
) -> None:
    """Drop every user's test interaction: the new test split is the valid split with the test's conditions.
    Train and evaluate on it with the original features folder; the original test stays unread."""
    with stage("tuning-set"):
        check_output(out, folder=True)
        print_counts("tuning set: its test targets are the valid targets", write_tuning_set(processed, out))
