"""Training stability across seeds (docs/training.md: training stability): which runs diverged, and every seed
of Table 2 against the stability bar."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pipeline.reporting.runs import Group, Run
from pipeline.reporting.tables import cell, label, markdown_table
from pipeline.training.schedule import loss_rise

LOSS_RISE_BAR = 0.05  # the stability bar: no seed's supervised loss ends more than 5% above its minimum
STD_RATIO_BAR = 1.5  # ... and ODMT's std across seeds at most 1.5x SASRec's (docs/training.md: training stability)


def diverged_runs(runs: Sequence[Run]) -> dict[str, int]:
    """{run: the epoch its train_log.tsv first flags it diverged}; logs from before the flag count as not diverged."""
    first = {run.name: next((int(row["epoch"]) for row in run.log if row.get("diverged")), None) for run in runs}
    return {name: epoch for name, epoch in first.items() if epoch is not None}


def stability(odmt: Group, baselines: list[Group], key: str) -> str:
    """Every seed of Table 2 against the stability bar: each training loss ends near its minimum, every
    ODMT seed beats the best baseline's mean, and ODMT varies across seeds at most STD_RATIO_BAR x SASRec."""
    groups = [group for group in (*baselines, odmt) if group.scores(key)]
    rows = {
        group.name: [
            str(len(group.runs)),
            f"{min(group.scores(key)):.4f}",
            cell(group.scores(key)),
            f"{max(loss_rise(run.log) for run in group.runs):+.1%}",
        ]
        for group in groups
    }
    columns = ["seeds", f"worst seed's {label(key)}", label(key), "training loss: end above its minimum (worst seed)"]
    rise, worst_run = max((loss_rise(run.log), run.name) for group in groups for run in group.runs)
    checks = [
        f"- Every training loss ends within {LOSS_RISE_BAR:.0%} of its minimum: "
        f"{verdict(rise <= LOSS_RISE_BAR)} (largest: {worst_run}, {rise:+.1%})."
    ]
    if odmt.scores(key) and (rivals := [group for group in groups if group is not odmt]):
        best = max(rivals, key=lambda group: statistics.mean(group.scores(key)))
        mean, worst = statistics.mean(best.scores(key)), min(odmt.scores(key))
        checks.append(
            f"- Every ODMT seed above the best baseline's mean ({best.name}, {mean:.4f}): {verdict(worst > mean)} (worst seed {worst:.4f})."
        )
    sasrec = next((group for group in groups if group.model_name == "sasrec" and len(group.scores(key)) > 1), None)
    if sasrec and len(odmt.scores(key)) > 1:
        ours, theirs = statistics.stdev(odmt.scores(key)), statistics.stdev(sasrec.scores(key))
        checks.append(
            f"- ODMT's std at most {STD_RATIO_BAR:g}x SASRec's: {verdict(ours <= STD_RATIO_BAR * theirs)} "
            f"({ours:.4f} against {theirs:.4f})."
        )
    return markdown_table(rows, columns, corner="group") + "\n\n" + "\n".join(checks)


def verdict(passed: bool) -> str:
    """A check's outcome, in bold."""
    return "**yes**" if passed else "**no**"
