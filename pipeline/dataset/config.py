"""`prepare` in params.yaml: kept apart from the filters so loading params never imports pyarrow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pipeline.errors import Count, Range, check_ranges

LeaveOneOutLength = Annotated[int, Range(3, reason="leave-one-out needs an item to train on, one to validate, one to test")]


@dataclass(frozen=True)
class PrepareConfig:
    """`prepare` in params.yaml (pipeline/dataset/prepare.py)."""

    min_user_interactions: LeaveOneOutLength = 5
    max_sequence_length: LeaveOneOutLength = 15
    # "keep": a re-bought item stays at every purchase (the paper). "last": only its last
    # purchase stays, so a valid/test target never repeats the user's history.
    repeated_items: Literal["keep", "last"] = "keep"
    # "decode": open and fully decode every photo; "exists": only check that the file exists.
    image_check: Literal["decode", "exists"] = "decode"
    image_workers: Count = 2  # threads checking photos

    def __post_init__(self) -> None:
        check_ranges(self)
