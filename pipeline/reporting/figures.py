"""The report's PNG figures: each group's training curves and Figure 4 (test Recall per item-popularity group)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pipeline.artifacts import atomic_path
from pipeline.reporting.runs import Group, Run
from pipeline.reporting.tables import label

POPULARITY_FIGURE = "popularity_groups.png"


def training_figure(group: Group) -> str:
    """The file name of a group's training figure: its first run's."""
    return f"training_{group.runs[0].name}.png"


def save_png(figure: Any, path: Path) -> None:
    """Atomically: an interrupted report leaves no half-written PNG."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def draw_training(run: Run, path: Path) -> None:
    """Loss parts and valid Recall per epoch: did training converge, and which epoch was selected."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg canvas by default
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in run.log]
    figure = Figure(figsize=(10, 4), layout="constrained")
    losses, recalls = figure.subplots(1, 2)
    for column in run.log[0]:
        if column.startswith(("ce_", "kl_")) or column == "total":
            losses.plot(epochs, [row[column] for row in run.log], label=column)
        if column.startswith("valid_recall@"):
            recalls.plot(epochs, [row[column] for row in run.log], marker="o", label=label(column.removeprefix("valid_")))
    recalls.axvline(run.metrics["epoch"], color="grey", linestyle=":", label="selected epoch")
    losses.set(xlabel="epoch", ylabel="loss (mean per target)", title=f"{run.name}: training loss")
    recalls.set(xlabel="epoch", ylabel="valid", title=f"{run.name}: validation")
    for axes in (losses, recalls):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    save_png(figure, path)


def draw_popularity(groups: list[Group], metric: str, path: Path) -> None:
    """Figure 4: test `metric` per popularity group, one bar per group (its seeds' mean): where do features help."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(groups)
    for i, group in enumerate(groups):
        rows = group.runs[0].groups
        means = [statistics.mean(run.groups[g][metric] for run in group.runs) for g in range(len(rows))]
        axes.bar([row["group"] + i * width for row in rows], means, width, label=group.name)
    count = max(len(group.runs[0].groups) for group in groups)
    axes.set_xticks([g + width * (len(groups) - 1) / 2 for g in range(count)], ["unseen", *map(str, range(1, count))])
    axes.set(xlabel="item popularity group (1 = rarest)", ylabel=f"test {label(metric)}")
    axes.legend()
    save_png(figure, path)
