"""`odmt report`: every evaluated run side by side, laid out as the paper's tables and figures.

Reads, for each run name, runs/<run>/config.json and train_log.tsv (odmt train) and
metrics/<run>/metrics.json and popularity_groups.tsv (odmt evaluate). Runs whose configs differ
only in train.seed form one group, reported as mean +- sample std over its seeds. The groups are
placed by how their config differs from the reference ODMT (per parameter, the value most groups
share): no run needs a naming convention. Writes to `out`:
  report.md               Table 2 (Pop, ODMT, the baselines and "Improv."), every seed against the stability
                          bar, each branch alone, Figure 5 (backbones), Table 3 (ablations) and Table 4
                          (T and alpha), when the runs hold them
  training_<group>.png    loss parts and valid Recall per epoch of the group's first run
  popularity_groups.png   test Recall per item-popularity group, one bar per Table 2 group (Figure 4)
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.artifacts import atomic_path, read_tsv
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.models.config import ModelConfig
from pipeline.training.config import TrainConfig
from pipeline.training.schedule import loss_rise

REPORT, POPULARITY_FIGURE = "report.md", "popularity_groups.png"
LABELS = {"recall": "Recall", "ndcg": "NDCG"}
IMT_VARIANTS = {2: "w/o IMT (1)", 1: "w/o IMT (2)"}  # separate per-modality Transformers of 2 or 1 layers
MODELS = {  # model.name -> the paper's name, in Table 2's column order
    "gru4rec": "GRU4Rec", "sasrec": "SASRec", "nextitnet": "NextItNet", "fdsa": "FDSA", "unisrec": "UniSRec",
    "sasrec_ef": "SASRec+EF", "sasrec_lf": "SASRec+LF", "odmt": "ODMT",
}
BACKBONES = ("sasrec", "gru4rec", "nextitnet")  # Figure 5: ODMT's user encoder against the same ID-only model
ABLATIONS = {f"model.{key}" for key in ("id_mask", "imt", "imt_layers", "distillation", "id_init", "use_id")}
SWEPT = {"model.temperature": "T", "model.alpha": "alpha"}  # Table 4
NO_DISTILLATION = {"model.distillation": False}  # Table 4's "None": distillation weight 0
LOSS_RISE_BAR = 0.05  # the stability bar: no seed's supervised loss ends more than 5% above its minimum
STD_RATIO_BAR = 1.5  # ... and ODMT's std across seeds at most 1.5x SASRec's (docs/training.md: training stability)


@dataclass(frozen=True)
class Run:
    """One trained and evaluated run: what the report compares."""

    name: str
    model: dict[str, Any]  # config.json "model": the ModelConfig it was trained with
    train: dict[str, Any]  # config.json "train": the TrainConfig
    metrics: dict[str, Any]  # metrics.json
    log: list[dict[str, float]]  # train_log.tsv, one row per epoch
    groups: list[dict[str, float]]  # popularity_groups.tsv, group 0 = unseen in training

    @property
    def config(self) -> dict[str, Any]:
        """Every model.* and train.* parameter but the seed, defaults filled in, as JSON values."""
        model = dataclasses.asdict(ModelConfig()) | self.model
        train = dataclasses.asdict(TrainConfig()) | self.train
        flat = {f"model.{k}": v for k, v in model.items()} | {f"train.{k}": v for k, v in train.items() if k != "seed"}
        return json.loads(json.dumps(flat))  # tuples -> lists, as config.json holds them


@dataclass(frozen=True)
class Group:
    """The runs of one config, differing only in train.seed: one cell of the paper's tables."""

    name: str
    runs: tuple[Run, ...]

    @property
    def config(self) -> dict[str, Any]:
        return self.runs[0].config

    @property
    def model_name(self) -> str:
        return self.config["model.name"]

    def scores(self, key: str, scorer: str = "ensemble") -> list[float]:
        """The test `key` of each seed (empty where the runs lack it)."""
        return [value for run in self.runs if (value := run.metrics.get(scorer, {}).get("test", {}).get(key)) is not None]


def read_json(path: Path, produced_by: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}). Re-create it with `{produced_by}`.") from error


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
        config = read_json(runs / name / "config.json", "odmt train")
        loaded.append(Run(
            name, config["model"], config["train"], scores,
            read_tsv(runs / name / "train_log.tsv", "odmt train"),
            read_tsv(metrics / name / "popularity_groups.tsv", "odmt evaluate"),
        ))
    return loaded


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with equal configs but the seed, in order of first appearance; named as their runs are, less `-seed<k>`."""
    members: dict[str, list[Run]] = {}
    for run in runs:
        members.setdefault(json.dumps(run.config, sort_keys=True), []).append(run)
    groups = []
    for same in members.values():
        names = sorted({run.name.removesuffix(f"-seed{run.train.get('seed', TrainConfig.seed)}") for run in same})
        groups.append(Group(" = ".join(names), tuple(same)))
    return groups


def reference_config(groups: list[Group]) -> dict[str, Any]:
    """Per parameter, the value most groups share, ties going to the dataclass default: the ODMT the rest vary."""
    defaults = Run("", {}, {}, {}, [], []).config
    reference = {}
    for key in groups[0].config:
        counts = Counter(json.dumps(group.config[key]) for group in groups)
        top = max(counts.values())
        tied = [json.loads(value) for value, count in counts.items() if count == top]
        reference[key] = defaults[key] if defaults[key] in tied else tied[0]
    return reference


def changes(group: Group, reference: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.config.items() if value != reference[key]}


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


def metric_keys(runs: Sequence[Run]) -> list[str]:
    """Every test metric of the runs, the paper's order: Recall@k for each k, then NDCG@k."""
    def paper_order(key: str) -> tuple[bool, str, int]:
        name, k = key.split("@")
        return name != "recall", name, int(k)

    return sorted({key for run in runs for key in run.metrics["ensemble"]["test"]}, key=paper_order)


def label(key: str) -> str:
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
    lines = [[corner, *columns], ["---"] * (len(columns) + 1)] + [[name, *row] for name, row in rows.items()]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def improvement(odmt: list[float], baselines: list[list[float]]) -> str:
    """Table 2's "Improv.": ODMT's mean over the best baseline mean, relative."""
    best = max((statistics.mean(samples) for samples in baselines if samples), default=0.0)
    return f"{statistics.mean(odmt) / best - 1:+.1%}" if odmt and best > 0 else "-"


def branches(run: Run) -> list[str]:
    """The scorers besides the ensemble and the popularity ranking (image, text, id for multi-branch models)."""
    return [name for name, value in run.metrics.items() if isinstance(value, dict) and name not in ("ensemble", POPULARITY_RANKING)]


def per_metric(groups: list[Group], keys: list[str], popularity: Run | None = None) -> dict[str, list[list[float]]]:
    """Rows of metrics, one column per group, led by the popularity ranking of `popularity`'s metrics when given."""
    return {label(key): [*popularity_scores(popularity, key), *(group.scores(key) for group in groups)] for key in keys}


def popularity_scores(run: Run | None, key: str) -> list[list[float]]:
    """The popularity ranking's test `key` as a column of one cell (it has no seed), or no column."""
    return [[run.metrics[POPULARITY_RANKING]["test"][key]]] if run else []


def per_group(groups: dict[str, Group], keys: list[str]) -> dict[str, list[list[float]]]:
    """One row per (labelled) group, one column per metric."""
    return {name: [group.scores(key) for key in keys] for name, group in groups.items()}


@dataclass(frozen=True)
class Layout:
    """Which group goes in which of the paper's tables, read from how each config differs from the reference."""

    groups: list[Group]

    @cached_property
    def reference(self) -> dict[str, Any]:
        return reference_config(self.groups)

    def where(self, name: str, allowed: set[str]) -> list[Group]:
        """The groups of model `name` that change nothing but `allowed` parameters."""
        return [g for g in self.groups if g.model_name == name and set(changes(g, self.reference)) - {"model.name"} <= allowed]

    @cached_property
    def odmt(self) -> Group | None:
        return next(iter(self.where("odmt", set())), None) if self.reference["model.name"] == "odmt" else None

    @cached_property
    def backbones(self) -> dict[str, Group]:
        """Figure 5: each backbone ID-only and as ODMT's user encoder, when some ODMT runs another backbone."""
        odmts = {g.config["model.user_encoder"]: g for g in self.where("odmt", {"model.user_encoder"})}
        if set(odmts) <= {self.reference["model.user_encoder"]}:
            return {}
        rows = {}
        for backbone in BACKBONES:
            for group in self.where(backbone, set()):
                rows[MODELS[backbone]] = group
            if backbone in odmts:
                rows[f"ODMT ({MODELS[backbone]})"] = odmts[backbone]
        return rows

    @cached_property
    def ablations(self) -> dict[str, Group]:
        """Table 3: the full ODMT and each switch, when there are both."""
        variants = [g for g in self.where("odmt", ABLATIONS) if g is not self.odmt]
        if self.odmt is None or not variants:
            return {}
        return {f"{ablation_name(g.runs[0].model) or 'ODMT'} ({g.name})": g for g in [self.odmt, *variants]}

    def sweep(self, key: str) -> dict[str, Group]:
        """Table 4: ODMT at each value of `key`, others at the reference, and "None" (no distillation)."""
        swept = [g for g in self.where("odmt", {key}) if g.config[key] != self.reference[key]]
        if self.odmt is None or not swept:
            return {}
        no_distillation = next((g for g in self.groups if changes(g, self.reference) == NO_DISTILLATION), None)
        rows = {"None": no_distillation} if no_distillation is not None else {}
        for group in sorted([self.odmt, *swept], key=lambda g: g.config[key]):
            rows[f"{SWEPT[key]} = {group.config[key]:g}"] = group
        return rows

    @cached_property
    def overall(self) -> list[Group]:
        """Table 2: ODMT, the baselines and every group no other table holds, in the paper's order."""
        elsewhere = {id(g) for rows in (self.backbones, self.ablations, *map(self.sweep, SWEPT)) for g in rows.values()}
        shown = [g for g in self.groups if set(changes(g, self.reference)) <= {"model.name"} or id(g) not in elsewhere]
        order = list(MODELS)
        return sorted(shown, key=lambda g: order.index(g.model_name) if g.model_name in order else len(order))


def report_markdown(dataset: str, layout: Layout) -> str:
    """report.md: Table 2, each branch alone, Figure 5, Table 3 and Table 4 where the runs hold them, figure links."""
    runs = [run for group in layout.groups for run in group.runs]
    keys = metric_keys(runs)
    users = " / ".join(map(str, sorted({run.metrics["users"] for run in runs})))
    items = " / ".join(map(str, sorted({run.metrics["items"] for run in runs})))
    seeds = " / ".join(map(str, sorted({len(group.runs) for group in layout.groups})))
    parts = [
        f"# ODMT report: {dataset}",
        f"Dataset **{dataset}**: {users} users, {items} items. Full ranking on the test target; best value in bold. "
        f"Runs differing only in their seed are one column: mean ± sample std over {seeds} seed(s).",
        "## Overall (Table 2; ensemble, test)",
    ]
    overall = layout.overall
    popularity = next((run for run in runs if POPULARITY_RANKING in run.metrics), None)  # the same ranking in every run
    rows = bolded(per_metric(overall, keys, popularity))
    columns = ["Pop"] * (popularity is not None) + [group.name for group in overall]
    baselines = [group for group in overall if group.model_name != "odmt"]
    if layout.odmt in overall and (baselines or popularity):
        rows = {name: [*row, improvement(layout.odmt.scores(key),
                                         [*popularity_scores(popularity, key), *(b.scores(key) for b in baselines)])]
                for (name, row), key in zip(rows.items(), keys)}
        columns.append("Improv.")
    parts.append(markdown_table(rows, columns, corner="metric"))
    if flagged := diverged_runs(runs):
        parts.append("**Diverged** (training loss rose `train.divergence_epochs` epochs in a row; docs/training.md: training "
                     "stability): " + ", ".join(f"{name} (epoch {epoch})" for name, epoch in flagged.items()))
    if layout.odmt in overall:
        parts += ["## Training stability (every seed; ensemble, test)", stability(layout.odmt, baselines, keys[0])]
    branch_rows = {f"{group.name} / {b}": [group.scores(key, b) for key in keys]
                   for group in overall for b in branches(group.runs[0])}
    if branch_rows:
        parts += ["## Each branch alone (test)",
                  markdown_table(bolded(branch_rows, per_column=True), [label(k) for k in keys], corner="group / branch")]
    tables = [
        ("Backbones (Figure 5; ensemble, test)", layout.backbones, "backbone"),
        ("Ablations (Table 3; ensemble, test)", layout.ablations, "variant (group)"),
        *((f"Distillation {SWEPT[key]} (Table 4; other parameters at the reference, ensemble, test)",
           layout.sweep(key), SWEPT[key]) for key in SWEPT),
    ]
    for title, groups, corner in tables:
        if groups:
            parts += [f"## {title}",
                      markdown_table(bolded(per_group(groups, keys), per_column=True), [label(k) for k in keys], corner=corner)]
    parts += ["## Figures", *(f"![training of {group.name}]({training_figure(group)})" for group in layout.groups),
              f"![test {label(keys[0])} per item-popularity group]({POPULARITY_FIGURE})"]
    return "\n\n".join(parts) + "\n"


def diverged_runs(runs: Sequence[Run]) -> dict[str, int]:
    """{run: the epoch its train_log.tsv first flags it diverged}; logs from before the flag count as not diverged."""
    first = {run.name: next((int(row["epoch"]) for row in run.log if row.get("diverged")), None) for run in runs}
    return {name: epoch for name, epoch in first.items() if epoch is not None}


def stability(odmt: Group, baselines: list[Group], key: str) -> str:
    """Every seed of Table 2 against the stability bar: each training loss ends near its minimum, every
    ODMT seed beats the best baseline's mean, and ODMT varies across seeds at most STD_RATIO_BAR x SASRec."""
    groups = [group for group in (*baselines, odmt) if group.scores(key)]
    rows = {group.name: [str(len(group.runs)), f"{min(group.scores(key)):.4f}", cell(group.scores(key)),
                         f"{max(loss_rise(run.log) for run in group.runs):+.1%}"] for group in groups}
    columns = ["seeds", f"worst seed's {label(key)}", label(key), "training loss: end above its minimum (worst seed)"]
    rise, worst_run = max((loss_rise(run.log), run.name) for group in groups for run in group.runs)
    checks = [f"- Every training loss ends within {LOSS_RISE_BAR:.0%} of its minimum: "
              f"{verdict(rise <= LOSS_RISE_BAR)} (largest: {worst_run}, {rise:+.1%})."]
    if odmt.scores(key) and (rivals := [group for group in groups if group is not odmt]):
        best = max(rivals, key=lambda group: statistics.mean(group.scores(key)))
        mean, worst = statistics.mean(best.scores(key)), min(odmt.scores(key))
        checks.append(f"- Every ODMT seed above the best baseline's mean ({best.name}, {mean:.4f}): "
                      f"{verdict(worst > mean)} (worst seed {worst:.4f}).")
    sasrec = next((group for group in groups if group.model_name == "sasrec" and len(group.scores(key)) > 1), None)
    if sasrec and len(odmt.scores(key)) > 1:
        ours, theirs = statistics.stdev(odmt.scores(key)), statistics.stdev(sasrec.scores(key))
        checks.append(f"- ODMT's std at most {STD_RATIO_BAR:g}x SASRec's: {verdict(ours <= STD_RATIO_BAR * theirs)} "
                      f"({ours:.4f} against {theirs:.4f}).")
    return markdown_table(rows, columns, corner="group") + "\n\n" + "\n".join(checks)


def verdict(passed: bool) -> str:
    return "**yes**" if passed else "**no**"


def training_figure(group: Group) -> str:
    return f"training_{group.runs[0].name}.png"


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


def report(runs: Path, metrics: Path, out: Path, dataset: str | None = None) -> str:
    """Compare every evaluated run: write report.md and its figures to `out`, return the Markdown.

    `dataset` names the data in the title; by default the folder holding `runs` (data/<dataset>/runs).
    """
    evaluated = load_runs(runs, metrics)
    layout = Layout(group_runs(evaluated))
    for group in layout.groups:
        draw_training(group.runs[0], out / training_figure(group))
    draw_popularity(layout.overall, metric_keys(evaluated)[0], out / POPULARITY_FIGURE)
    markdown = report_markdown(dataset or runs.absolute().parent.name, layout)
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
            rows[log.parent.name] = [str(len(epochs)), f"{statistics.mean(e['seconds'] for e in epochs):.1f}",
                                     f"{statistics.mean(e['sequences_per_s'] for e in epochs):.0f}",
                                     f"{sum(e['seconds'] for e in epochs):.0f}"]
    columns = ["epochs", "seconds / epoch", "training sequences / s", "seconds in all"]
    return f"## Training time (this machine; timing.tsv)\n\n{markdown_table(rows, columns, 'run')}\n" if rows else ""
