"""Markdown tables of test metrics: cells as mean ± sample std over seeds with their bootstrap interval, the best in bold
where a paired test says it is better than every other, and in words which differences are within noise; the paper's labels."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.reporting.config import ReportConfig
from pipeline.reporting.runs import Group, Run
from pipeline.reporting.statistics import Comparison, Interval, compare, mean_interval

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


def markdown_table(rows: dict[str, list[str]], columns: list[str], corner: str = "") -> str:
    """A Markdown table: one line per row, led by its name; `corner` heads the column of names."""
    lines = [[corner, *columns], ["---"] * (len(columns) + 1)] + [[name, *row] for name, row in rows.items()]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


@dataclass(frozen=True)
class Entry:
    """One cell: a group's (or Pop's) test metric, per seed (metrics.json) and per seed and user (user_metrics.parquet)."""

    name: str  # how the words under a table call it
    seeds: list[float]  # empty: the group lacks this metric, "-"
    users: np.ndarray  # (seeds, users)
    identity: tuple[str, str, str]  # (group, scorer, metric): each interval and test is computed once

    @property
    def mean(self) -> float:
        return statistics.mean(self.seeds)


def group_entry(group: Group, key: str, scorer: str = "ensemble", name: str | None = None) -> Entry:
    seeds = group.scores(key, scorer)
    users = group.per_user(key, scorer) if seeds else np.empty((0, 0))
    return Entry(name or group.name, seeds, users, (group.name, scorer, key))


def popularity_entry(run: Run, key: str) -> Entry:
    """The popularity ranking: one "seed", the same in every run of one processed set."""
    return Entry("Pop", [run.metrics[POPULARITY_RANKING]["test"][key]], run.per_user(key, POPULARITY_RANKING)[np.newaxis], ("Pop", "", key))


@dataclass
class Uncertainty:
    """The intervals and paired tests of one report, at its ReportConfig, each computed once."""

    config: ReportConfig
    intervals: dict[tuple[str, str, str], Interval] = field(default_factory=dict)
    comparisons: dict[tuple[tuple[str, str, str], tuple[str, str, str]], Comparison] = field(default_factory=dict)

    def interval(self, entry: Entry) -> Interval:
        if entry.identity not in self.intervals:
            c = self.config
            self.intervals[entry.identity] = mean_interval(entry.users, c.confidence, c.bootstrap_samples, c.seed)
        return self.intervals[entry.identity]

    def compare(self, candidate: Entry, baseline: Entry) -> Comparison:
        pair = (candidate.identity, baseline.identity)
        if pair not in self.comparisons:
            c = self.config
            self.comparisons[pair] = compare(candidate.users, baseline.users, c.confidence, c.bootstrap_samples, c.permutations, c.seed)
        return self.comparisons[pair]

    def significant(self, comparison: Comparison) -> bool:
        return comparison.p_value < self.config.significance


def interval_cell(entry: Entry, uncertainty: Uncertainty) -> str:
    """mean ± std over seeds (one seed: the value) and the bootstrap interval of the mean: "0.0708 ± 0.0064 [0.0577, 0.0851]"."""
    if not entry.seeds:
        return "-"
    interval = uncertainty.interval(entry)
    return f"{cell(entry.seeds)} [{interval.low:.4f}, {interval.high:.4f}]"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass(frozen=True)
class Verdict:
    """A row's (or column's) best cell, whether a paired test puts it above every other, and the cells within noise of it."""

    best: Entry | None
    bold: bool
    within_noise: list[tuple[Entry, Comparison]]
    compared: bool  # the line holds two cells or more


def best_of(entries: list[Entry], uncertainty: Uncertainty) -> Verdict:
    """The best mean is bold only when it is significantly above each other cell (an intersection-union test: at the
    stated level without a correction for the several comparisons)."""
    present = [entry for entry in entries if entry.seeds]
    if len(present) < 2:
        return Verdict(present[0] if present else None, False, [], False)
    best = max(present, key=lambda entry: entry.mean)
    compared = [(other, uncertainty.compare(best, other)) for other in present if other is not best]
    noise = [(other, comparison) for other, comparison in compared if not uncertainty.significant(comparison)]
    return Verdict(best, not noise, noise, True)


def significance_cells(
    rows: dict[str, list[Entry]], uncertainty: Uncertainty, per_column: bool = False
) -> tuple[dict[str, list[str]], list[Verdict]]:
    """Every cell with its interval, the best of each row (or column) bold where significant."""
    lines = [list(line) for line in zip(*rows.values())] if per_column else list(rows.values())
    verdicts = [best_of(line, uncertainty) for line in lines]
    cells = [
        [f"**{interval_cell(entry, uncertainty)}**" if v.bold and entry is v.best else interval_cell(entry, uncertainty) for entry in line]
        for line, v in zip(lines, verdicts)
    ]
    if per_column:
        cells = [list(row) for row in zip(*cells)]
    return dict(zip(rows, cells)), verdicts


def noise_note(names: list[str], verdicts: list[Verdict], uncertainty: Uncertainty, along: str) -> str:
    """The sentence under a table: in words, the cells within noise of the best of their row (or column), each line
    named by `names`."""
    level = uncertainty.config.significance
    words = [
        f"{name}: {', '.join(f'{other.name} ({p_text(c.p_value)})' for other, c in v.within_noise)} within noise of {v.best.name}"
        for name, v in zip(names, verdicts)
        if v.best is not None and v.within_noise
    ]
    if not any(v.compared for v in verdicts):
        return f"One cell per {along}: nothing is compared."
    if not words:
        return f"Every difference from the best of its {along} is significant (p < {level:g}), each paired over the same users."
    return f"Within noise (paired over the same users, p ≥ {level:g}): " + "; ".join(words) + "."


def significance_table(
    rows: dict[str, list[Entry]], columns: list[str], corner: str, uncertainty: Uncertainty, per_column: bool = False
) -> str:
    """A table of intervals, bold where significant, and the words under it."""
    cells, verdicts = significance_cells(rows, uncertainty, per_column)
    note = noise_note(columns if per_column else list(rows), verdicts, uncertainty, "column" if per_column else "row")
    return markdown_table(cells, columns, corner) + "\n\n" + note


def relative_difference(comparison: Comparison, uncertainty: Uncertainty) -> str:
    """Table 2's "Improv.": the paired relative difference over the same users, its interval and p; bold where significant."""
    if math.isnan(comparison.relative):
        return f"- (baseline 0; {p_text(comparison.p_value)})"
    low, high = comparison.relative_interval.low, comparison.relative_interval.high
    text = f"{comparison.relative:+.1%} [{percent(low)}, {percent(high)}], {p_text(comparison.p_value)}"
    return f"**{text}**" if uncertainty.significant(comparison) else text


def percent(value: float) -> str:
    return ("+∞" if value > 0 else "-∞") if math.isinf(value) else f"{value:+.1%}"


def per_metric(groups: list[Group], keys: list[str], popularity: Run | None = None) -> dict[str, list[Entry]]:
    """Rows of metrics, one column per group, led by the popularity ranking of `popularity`'s metrics when given."""
    return {
        label(key): [*([popularity_entry(popularity, key)] if popularity else []), *(group_entry(g, key) for g in groups)] for key in keys
    }


def per_group(groups: dict[str, Group], keys: list[str], scorer: str = "ensemble") -> dict[str, list[Entry]]:
    """One row per (labelled) group, one column per metric."""
    return {name: [group_entry(group, key, scorer, name) for key in keys] for name, group in groups.items()}
