"""`odmt report`: every evaluated run side by side, laid out as the paper's tables and figures.

Reads, for each run name, runs/<run>/config.json and train_log.tsv (odmt train) and
metrics/<run>/metrics.json, user_metrics.parquet and popularity_groups.tsv (odmt evaluate). Runs
whose configs differ only in train.seed form one group, reported as mean +- sample std over its
seeds beside the bootstrap interval of its mean; the best of a row (or column) is bold where a
paired test over the same users puts it above every other, and the words under each table name
the differences within noise (statistics.py). The groups are placed by how their config differs
from the reference ODMT (per parameter, the value most groups share): no run needs a naming
convention. Writes to `out`:
  report.md               Table 2 (Pop, ODMT, the baselines and "Improv."), every seed against the stability
                          bar, each branch alone, Figure 5 (backbones), Table 3 (ablations) and Table 4
                          (T and alpha), when the runs hold them
  training_<group>.png    loss parts and valid Recall per epoch of the group's first run
  popularity_groups.png   test Recall per item-popularity group, one bar per Table 2 group (Figure 4)
"""

from __future__ import annotations

import statistics
from pathlib import Path

from pipeline.artifacts import atomic_path, read_tsv
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.reporting.config import ReportConfig
from pipeline.reporting.figures import POPULARITY_FIGURE, draw_popularity, draw_training, training_figure
from pipeline.reporting.layout import SWEPT, Layout
from pipeline.reporting.runs import Run, branches, group_runs, load_runs, metric_keys
from pipeline.reporting.stability import diverged_runs, stability
from pipeline.reporting.tables import (
    Entry,
    Uncertainty,
    group_entry,
    label,
    markdown_table,
    noise_note,
    p_text,
    per_group,
    per_metric,
    popularity_entry,
    relative_difference,
    significance_cells,
    significance_table,
)

REPORT = "report.md"


def overall_table(layout: Layout, keys: list[str], popularity: Run | None, uncertainty: Uncertainty) -> str:
    """Table 2 with "Improv.": ODMT against the best baseline of each row (Pop included), paired over the same users."""
    overall = layout.overall
    rows = per_metric(overall, keys, popularity)
    columns = ["Pop"] * (popularity is not None) + [group.name for group in overall]
    cells, verdicts = significance_cells(rows, uncertainty)
    parts = [noise_note(list(rows), verdicts, uncertainty, "row")]
    baselines = [group for group in overall if group.model_name != "odmt"]
    if layout.odmt in overall and (baselines or popularity):
        columns.append("Improv.")
        against: dict[str, list[str]] = {}
        noise = []
        for name, key in zip(rows, keys):
            odmt = group_entry(layout.odmt, key)
            rivals = [*([popularity_entry(popularity, key)] if popularity else []), *(group_entry(g, key) for g in baselines)]
            best: Entry | None = max((entry for entry in rivals if entry.seeds), key=lambda entry: entry.mean, default=None)
            if best is None or not odmt.seeds:
                cells[name].append("-")
                continue
            comparison = uncertainty.compare(odmt, best)
            cells[name].append(relative_difference(comparison, uncertainty))
            against.setdefault(best.name, []).append(name)
            if not uncertainty.significant(comparison):
                noise.append(f"{name} ({p_text(comparison.p_value)})")
        rivals_named = "; ".join(f"{rival} on {', '.join(names)}" for rival, names in against.items())
        parts.append(
            f"Improv.: {layout.odmt.name} against the best baseline of its row ({rivals_named}), paired over the same users: "
            f"the relative difference of the means [its {uncertainty.config.confidence:.0%} interval] and p, bold where "
            f"p < {uncertainty.config.significance:g}. "
            + (f"Within noise: {', '.join(noise)}." if noise else "Significant on every metric.")
        )
    return "\n\n".join([markdown_table(cells, columns, corner="metric"), *parts])


def report_markdown(dataset: str, layout: Layout, config: ReportConfig) -> str:
    """report.md: Table 2, each branch alone, Figure 5, Table 3 and Table 4 where the runs hold them, figure links."""
    runs = [run for group in layout.groups for run in group.runs]
    keys = metric_keys(runs)
    users = " / ".join(map(str, sorted({run.metrics["users"] for run in runs})))
    items = " / ".join(map(str, sorted({run.metrics["items"] for run in runs})))
    seeds = " / ".join(map(str, sorted({len(group.runs) for group in layout.groups})))
    tested = len(runs[0].per_user(keys[0]))  # every run ranked the same test users (load_runs checks)
    uncertainty = Uncertainty(config)
    parts = [
        f"# ODMT report: {dataset}",
        f"Dataset **{dataset}**: {users} users, {items} items. Full ranking on the test target. Runs differing only in their "
        f"seed are one column: mean ± sample std over {seeds} seed(s) (one seed: its value), then in brackets the "
        f"{config.confidence:.0%} bootstrap interval of the mean (seeds, then the {tested} test users resampled). Bold: the best "
        f"of its row (or column) where a paired sign-flip test over the same users, seeds pooled, puts it above every other "
        f"(two-sided, p < {config.significance:g}). docs/evaluation.md says how.",
        "## Overall (Table 2; ensemble, test)",
    ]
    overall = layout.overall
    popularity = next((run for run in runs if POPULARITY_RANKING in run.metrics), None)  # the same ranking in every run
    parts.append(overall_table(layout, keys, popularity, uncertainty))
    baselines = [group for group in overall if group.model_name != "odmt"]
    if flagged := diverged_runs(runs):
        parts.append(
            "**Diverged** (training loss rose `train.divergence_epochs` epochs in a row; docs/training.md: training "
            "stability): " + ", ".join(f"{name} (epoch {epoch})" for name, epoch in flagged.items())
        )
    if layout.odmt in overall:
        parts += ["## Training stability (every seed; ensemble, test)", stability(layout.odmt, baselines, keys[0])]
    branch_rows = {
        f"{group.name} / {b}": [group_entry(group, key, b, f"{group.name} / {b}") for key in keys]
        for group in overall
        for b in branches(group.runs[0])
    }
    if branch_rows:
        parts += [
            "## Each branch alone (test)",
            significance_table(branch_rows, [label(k) for k in keys], "group / branch", uncertainty, per_column=True),
        ]
    tables = [
        ("Backbones (Figure 5; ensemble, test)", layout.backbones, "backbone"),
        ("Ablations (Table 3; ensemble, test)", layout.ablations, "variant (group)"),
        *(
            (f"Distillation {SWEPT[key]} (Table 4; other parameters at the reference, ensemble, test)", layout.sweep(key), SWEPT[key])
            for key in SWEPT
        ),
    ]
    for title, groups, corner in tables:
        if groups:
            parts += [
                f"## {title}",
                significance_table(per_group(groups, keys), [label(k) for k in keys], corner, uncertainty, per_column=True),
            ]
    parts += [
        "## Figures",
        *(f"![training of {group.name}]({training_figure(group)})" for group in layout.groups),
        f"![test {label(keys[0])} per item-popularity group]({POPULARITY_FIGURE})",
    ]
    return "\n\n".join(parts) + "\n"


def report(runs: Path, metrics: Path, out: Path, config: ReportConfig, dataset: str | None = None) -> str:
    """Compare every evaluated run: write report.md and its figures to `out`, return the Markdown.

    `dataset` names the data in the title; by default the folder holding `runs` (data/<dataset>/runs).
    """
    evaluated = load_runs(runs, metrics)
    layout = Layout(group_runs(evaluated))
    for group in layout.groups:
        draw_training(group.runs[0], out / training_figure(group))
    draw_popularity(layout.overall, metric_keys(evaluated)[0], out / POPULARITY_FIGURE)
    markdown = report_markdown(dataset or runs.absolute().parent.name, layout, config)
    with atomic_path(out / REPORT) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return markdown


def timing_table(runs: Path) -> str:
    """Seconds per epoch and training sequences/s of every run that logged them (timing.tsv).

    `odmt report` prints it; report.md never holds it, since report.md is a DVC output and
    must be a function of the runs' results, while timings follow the machine.
    """
    rows = {}
    for log in sorted(runs.glob("*/timing.tsv")):
        epochs = read_tsv(log, "odmt train")
        if epochs:
            rows[log.parent.name] = [
                str(len(epochs)),
                f"{statistics.mean(e['seconds'] for e in epochs):.1f}",
                f"{statistics.mean(e['sequences_per_s'] for e in epochs):.0f}",
                f"{sum(e['seconds'] for e in epochs):.0f}",
            ]
    columns = ["epochs", "seconds / epoch", "training sequences / s", "seconds in all"]
    return f"## Training time (this machine; timing.tsv)\n\n{markdown_table(rows, columns, 'run')}\n" if rows else ""
