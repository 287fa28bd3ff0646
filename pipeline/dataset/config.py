"""`prepare` in params.yaml: kept apart from the filters so loading params never imports pyarrow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pipeline.errors import Count, Range, check_ranges

LeaveOneOutLength = Annotated[int, Range(3, reason="leave-one-out needs an item to train on, one to validate, one to test")]
Quantile = Annotated[float, Range(0, 1, low_open=True, high_open=True, reason="a share of the interactions, in time order")]
Split = Literal["leave_one_out", "temporal"]


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
    # "leave_one_out": each user's last item tests, the one before validates (the paper).
    # "temporal": two global cuts in time (docs/evaluation.md#the-split).
    split: Split = "leave_one_out"
    # temporal only: the cuts as quantiles of the interactions' timestamps; training before
    # the first, a user's first interaction between them validates, the first after the second tests.
    temporal_cuts: tuple[Quantile, ...] = (0.8, 0.9)

    def __post_init__(self) -> None:
        check_ranges(self)
        if len(self.temporal_cuts) != 2 or not self.temporal_cuts[0] < self.temporal_cuts[1]:
            cuts = list(self.temporal_cuts)
            raise ValueError(f"temporal_cuts = {cuts}: give two increasing quantiles, the validation and the test cut, e.g. [0.8, 0.9]")
