"""`odmt report`: every evaluated run side by side, laid out as the paper's tables and figures.

Reads, for each run name, runs/<run>/config.json and train_log.tsv (odmt train) and
metrics/<run>/metrics.json and popularity_groups.tsv (odmt evaluate); writes to `out`:
  report.md               Table 2 (test metrics of the ensemble, runs as columns), each branch
                          alone, Table 3 (ablation variants, when the runs hold some), figure links
  training_<run>.png      loss parts and valid Recall per epoch
  popularity_groups.png   test Recall per item-popularity group, one bar per run (Figure 4)
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import atomic_path
from pipeline.errors import InputError
from pipeline.models.config import ModelConfig

REPORT, POPULARITY_FIGURE = "report.md", "popularity_groups.png"
LABELS = {"recall": "Recall", "ndcg": "NDCG"}
IMT_VARIANTS = {2: "w/o IMT (1)", 1: "w/o IMT (2)"}  # separate per-modality Transformers of 2 or 1 layers


@dataclass(frozen=True)
class Run:
    """One trained and evaluated run: what the report compares."""

    name: str
    model: dict[str, Any]  # config.json "model": the ModelConfig it was trained with
    metrics: dict[str, Any]  # metrics.json
    log: list[dict[str, float]]  # train_log.tsv, one row per epoch
    groups: list[dict[str, float]]  # popularity_groups.tsv, group 0 = unseen in training


def read_json(path: Path, produced_by: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}). Re-create it with `{produced_by}`.") from error


def read_tsv(path: Path, produced_by: str) -> list[dict[str, float]]:
    """A numeric table written by write_tsv (train_log.tsv, popularity_groups.tsv)."""
    if not path.is_file():
        raise InputError(f"{path}: missing. Run `{produced_by}` first.")
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file, delimiter="\t")]


def load_runs(runs: Path, metrics: Path) -> list[Run]:
    """Every run name with both a config.json under `runs` and a metrics.json under `metrics`, by name."""
    names = sorted(p.parent.name for p in metrics.glob("*/metrics.json") if (runs / p.parent.name / "config.json").is_file())
    if not names:
        raise InputError(
            f"{metrics}: no evaluated run (a <run>/metrics.json beside {runs}/<run>/config.json). "
            f"Run `odmt evaluate --run {runs}/<run> --out {metrics}/<run> ...` first."
        )
    loaded = []
    for name in names:
        scores = read_json(metrics / name / "metrics.json", "odmt evaluate")
        if "ensemble" not in scores:
            raise InputError(f"{metrics / name / 'metrics.json'}: no \"ensemble\" metrics. Re-create it with `odmt evaluate`.")
        loaded.append(Run(
            name, read_json(runs / name / "config.json", "odmt train")["model"], scores,
            read_tsv(runs / name / "train_log.tsv", "odmt train"),
            read_tsv(metrics / name / "popularity_groups.tsv", "odmt evaluate"),
        ))
    return loaded


def ablation_name(model: dict[str, Any]) -> str | None:
    """The Table 3 variant a run's model config is, None for the full ODMT: runs need no naming convention."""
    m = dataclasses.asdict(ModelConfig()) | model
    names = []
    if not m["id_mask"]:
        names.append("w/o ID mask")
    if not m["imt"]:
        names.append(IMT_VARIANTS.get(m["imt_layers"], f"w/o IMT ({m['imt_layers']} layers)"))
    if not m["distillation"]:
        names.append("w/o online distillation")
    if m["id_init"] != "mean":
        names.append(f"ID init {m['id_init']}")
    if not m["use_id"]:
        names.append("ID-free")
    return " + ".join(names) or None


def metric_keys(runs: list[Run]) -> list[str]:
    """Every test metric of the runs, the paper's order: Recall@k for each k, then NDCG@k."""
    def paper_order(key: str) -> tuple[bool, str, int]:
        name, k = key.split("@")
        return name != "recall", name, int(k)

    return sorted({key for run in runs for key in run.metrics["ensemble"]["test"]}, key=paper_order)


def label(key: str) -> str:
    name, k = key.split("@")
    return f"{LABELS.get(name, name)}@{k}"


def bold_best(values: list[float | None], best: Callable[..., float]) -> list[str]:
    """4 decimals, the best value in bold (ties all bold), "-" where a run lacks the metric."""
    present = [v for v in values if v is not None]
    top = best(present) if present else None
    return ["-" if v is None else f"**{v:.4f}**" if v == top else f"{v:.4f}" for v in values]


def markdown_table(
    rows: dict[str, list[float | None]], columns: list[str], best: Callable[..., float] = max,
    per_column: bool = False, corner: str = "",
) -> str:
    """A Markdown table of `rows` (label -> one value per column), the best of each row (or column) in bold."""
    values = list(rows.values())
    if per_column:
        cells = [list(row) for row in zip(*(bold_best(list(column), best) for column in zip(*values)))]
    else:
        cells = [bold_best(row, best) for row in values]
    lines = [[corner, *columns], ["---"] * (len(columns) + 1)] + [[name, *row] for name, row in zip(rows, cells)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def score(run: Run, scorer: str, key: str) -> float | None:
    return run.metrics.get(scorer, {}).get("test", {}).get(key)


def branches(run: Run) -> list[str]:
    """The scorers besides the ensemble (image, text, id for multi-branch models)."""
    return [name for name, value in run.metrics.items() if isinstance(value, dict) and name != "ensemble"]


def report_markdown(dataset: str, runs: list[Run]) -> str:
    """report.md: Table 2, each branch alone, Table 3 when the runs hold ablations, links to the figures."""
    keys = metric_keys(runs)
    users = " / ".join(map(str, sorted({run.metrics["users"] for run in runs})))
    items = " / ".join(map(str, sorted({run.metrics["items"] for run in runs})))
    parts = [
        f"# ODMT report: {dataset}",
        f"Dataset **{dataset}**: {users} users, {items} items. Full ranking on the test target; best value in bold.",
        "## Overall (Table 2; ensemble, test)",
        markdown_table({label(k): [score(run, "ensemble", k) for run in runs] for k in keys},
                       [run.name for run in runs], corner="metric"),
    ]
    branch_rows = {f"{run.name} / {b}": [score(run, b, k) for k in keys] for run in runs for b in branches(run)}
    if branch_rows:
        parts += ["## Each branch alone (test)",
                  markdown_table(branch_rows, [label(k) for k in keys], per_column=True, corner="run / branch")]
    odmt_runs = [run for run in runs if run.model.get("name", "odmt") == "odmt"]  # baselines are not ablations
    variants = sorted(((ablation_name(run.model), run) for run in odmt_runs), key=lambda variant: variant[0] is not None)
    if variants and variants[0][0] is None and variants[-1][0] is not None:
        rows = {f"{name or 'ODMT'} ({run.name})": [score(run, "ensemble", k) for k in keys] for name, run in variants}
        parts += ["## Ablations (Table 3; ensemble, test)",
                  markdown_table(rows, [label(k) for k in keys], per_column=True, corner="variant (run)")]
    parts += ["## Figures", *(f"![training of {run.name}](training_{run.name}.png)" for run in runs),
              f"![test {label(keys[0])} per item-popularity group]({POPULARITY_FIGURE})"]
    return "\n\n".join(parts) + "\n"


def save_png(figure: Any, path: Path) -> None:
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
    losses.set(xlabel="epoch", ylabel="loss (per sequence)", title=f"{run.name}: training loss")
    recalls.set(xlabel="epoch", ylabel="valid", title=f"{run.name}: validation")
    for axes in (losses, recalls):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    save_png(figure, path)


def draw_popularity(runs: list[Run], metric: str, path: Path) -> None:
    """Figure 4: test `metric` per popularity group, one bar per run: where do multi-modal features help."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        axes.bar([row["group"] + i * width for row in run.groups], [row[metric] for row in run.groups], width, label=run.name)
    groups = max(len(run.groups) for run in runs)
    axes.set_xticks([g + width * (len(runs) - 1) / 2 for g in range(groups)], ["unseen", *map(str, range(1, groups))])
    axes.set(xlabel="item popularity group (1 = rarest)", ylabel=f"test {label(metric)}")
    axes.legend()
    save_png(figure, path)


def report(runs: Path, metrics: Path, out: Path) -> str:
    """Compare every evaluated run: write report.md and its figures to `out`, return the Markdown."""
    evaluated = load_runs(runs, metrics)
    for run in evaluated:
        draw_training(run, out / f"training_{run.name}.png")
    draw_popularity(evaluated, metric_keys(evaluated)[0], out / POPULARITY_FIGURE)
    markdown = report_markdown(runs.absolute().parent.name, evaluated)
    with atomic_path(out / REPORT) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return markdown
