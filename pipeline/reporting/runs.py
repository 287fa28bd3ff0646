"""Evaluated runs as the report reads them: each run's config, metrics and logs, and the runs grouped by seed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.artifacts import read_tsv
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.models.config import ModelConfig
from pipeline.training.config import TrainConfig


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
    """A stage's JSON output; a corrupt file names the command that re-creates it."""
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
            raise InputError(f'{metrics / name / "metrics.json"}: no "ensemble" metrics. Re-create it with `odmt evaluate`.')
        config = read_json(runs / name / "config.json", "odmt train")
        loaded.append(
            Run(
                name,
                config["model"],
                config["train"],
                scores,
                read_tsv(runs / name / "train_log.tsv", "odmt train"),
                read_tsv(metrics / name / "popularity_groups.tsv", "odmt evaluate"),
            )
        )
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


def metric_keys(runs: Sequence[Run]) -> list[str]:
    """Every test metric of the runs, the paper's order: Recall@k for each k, then NDCG@k."""

    def paper_order(key: str) -> tuple[bool, str, int]:
        name, k = key.split("@")
        return name != "recall", name, int(k)

    return sorted({key for run in runs for key in run.metrics["ensemble"]["test"]}, key=paper_order)


def branches(run: Run) -> list[str]:
    """The scorers besides the ensemble and the popularity ranking (image, text, id for multi-branch models)."""
    return [name for name, value in run.metrics.items() if isinstance(value, dict) and name not in ("ensemble", POPULARITY_RANKING)]
