"""Markdown tables of test metrics: cells as mean ± sample std over seeds, the best in bold, the paper's labels."""

from __future__ import annotations

import statistics

from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.reporting.runs import Group, Run

LABELS = {"recall": "Recall", "ndcg": "NDCG"}


def label(key: str) -> str:
    """A metric key as the paper writes it: recall@10 -> Recall@10."""
    name, k = key.split("@")
    return f"{LABELS.get(name, name)}@{k}"


def cell(samples: list[float]) -> str:
    """One seed: the value; several: mean +- sample std; none: "-"."""
    if not samples:
        return "-"
    if len(samples) == 1:
        return f"{samples[0]:.4f}"
    return f"{statistics.mean(samples):.4f} ± {statistics.stdev(samples):.4f}"


def bold_best(row: list[list[float]]) -> list[str]:
    """The cells of one row (or column), the best mean in bold (ties all bold)."""
    means = [statistics.mean(samples) if samples else None for samples in row]
    top = max((m for m in means if m is not None), default=None)
    return [f"**{cell(samples)}**" if mean is not None and mean == top else cell(samples) for samples, mean in zip(row, means)]


def bolded(rows: dict[str, list[list[float]]], per_column: bool = False) -> dict[str, list[str]]:
    """Format every cell, the best of each row (or each column) in bold."""
    if not per_column:
        return {name: bold_best(row) for name, row in rows.items()}
    columns = [bold_best(list(column)) for column in zip(*rows.values())]
    return {name: list(row) for name, row in zip(rows, zip(*columns))}


def markdown_table(rows: dict[str, list[str]], columns: list[str], corner: str = "") -> str:
    """A Markdown table: one line per row, led by its name; `corner` heads the column of names."""
    lines = [[corner, *columns], ["---"] * (len(columns) + 1)] + [[name, *row] for name, row in rows.items()]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def improvement(odmt: list[float], baselines: list[list[float]]) -> str:
    """Table 2's "Improv.": ODMT's mean over the best baseline mean, relative."""
    best = max((statistics.mean(samples) for samples in baselines if samples), default=0.0)
    return f"{statistics.mean(odmt) / best - 1:+.1%}" if odmt and best > 0 else "-"


def per_metric(groups: list[Group], keys: list[str], popularity: Run | None = None) -> dict[str, list[list[float]]]:
    """Rows of metrics, one column per group, led by the popularity ranking of `popularity`'s metrics when given."""
    return {label(key): [*popularity_scores(popularity, key), *(group.scores(key) for group in groups)] for key in keys}


def popularity_scores(run: Run | None, key: str) -> list[list[float]]:
    """The popularity ranking's test `key` as a column of one cell (it has no seed), or no column."""
    return [[run.metrics[POPULARITY_RANKING]["test"][key]]] if run else []


def per_group(groups: dict[str, Group], keys: list[str]) -> dict[str, list[list[float]]]:
    """One row per (labelled) group, one column per metric."""
    return {name: [group.scores(key) for key in keys] for name, group in groups.items()}
