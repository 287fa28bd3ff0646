"""`report` in params.yaml: how `odmt report` states its uncertainty (pipeline/reporting/statistics.py; docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pipeline.errors import Count, Range, Seed, check_ranges

Share = Annotated[float, Range(0, 1, low_open=True, high_open=True)]  # 0 and 1 would mean no interval or no test


@dataclass(frozen=True)
class ReportConfig:
    """Bootstrap intervals and paired sign-flip tests: their sizes, levels and seed."""

    bootstrap_samples: Count = 10000  # replicates of each percentile bootstrap interval
    permutations: Count = 10000  # Monte Carlo sign flips of the paired test; all 2^n are enumerated when that is no more
    confidence: Share = 0.95  # of every interval
    significance: Share = 0.05  # level of the two-sided paired test: a difference is bold and named significant below it
    seed: Seed = 0  # every interval and test draws from a generator seeded with this: the report is a function of its inputs

    def __post_init__(self) -> None:
        check_ranges(self)
