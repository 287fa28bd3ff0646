"""Evaluated runs as the report reads them: each run's config, metrics, per-user metrics and logs, and the runs grouped by seed."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.artifacts import read_tsv
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.models.config import ModelConfig
from pipeline.training.config import TrainConfig

USER_METRICS = "user_metrics.parquet"  # odmt evaluate: one row per user, split and scorer (docs/design.md)
CASES = ("split", "user_idx", "user_id", "target")  # what pairs two runs: the same users with the same targets
MEANS_TOLERANCE = 1e-6  # relative: user_metrics.parquet's means are metrics.json's unless the two come from different runs


@dataclass(frozen=True)
class UserMetrics:
    """A run's user_metrics.parquet: the test cases it ranked and each scorer's metrics on every test user."""

    cases: pa.Table  # CASES of every (split, user), ordered by split and user_idx
    test: dict[str, dict[str, np.ndarray]]  # scorer -> metric -> one value per test user, in user_idx order


@dataclass(frozen=True)
class Run:
    """One trained and evaluated run: what the report compares."""

    name: str
    model: dict[str, Any]  # config.json "model": the ModelConfig it was trained with
    train: dict[str, Any]  # config.json "train": the TrainConfig
    metrics: dict[str, Any]  # metrics.json
    log: list[dict[str, float]]  # train_log.tsv, one row per epoch
    groups: list[dict[str, float]]  # popularity_groups.tsv, group 0 = unseen in training
    users: UserMetrics | None = None  # user_metrics.parquet

    def per_user(self, key: str, scorer: str = "ensemble") -> np.ndarray:
        """The test `key` of every user under `scorer`."""
        if self.users is None:
            raise ValueError(f"{self.name}: no per-user metrics were read")
        return self.users.test[scorer][key]

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

    def per_user(self, key: str, scorer: str = "ensemble") -> np.ndarray:
        """(seeds, users): the test `key` of every user under each seed that has it, the seeds of `scores`."""
        return np.stack([run.per_user(key, scorer) for run in self.runs if key in run.metrics.get(scorer, {}).get("test", {})])


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
    loaded, processed = [], {}
    for name in names:
        scores = read_json(metrics / name / "metrics.json", "odmt evaluate")
        if "ensemble" not in scores:
            raise InputError(f'{metrics / name / "metrics.json"}: no "ensemble" metrics. Re-create it with `odmt evaluate`.')
        config = read_json(runs / name / "config.json", "odmt train")
        processed[name] = str(config.get("processed", "?"))  # named in errors only: a path is no identity
        loaded.append(
            Run(
                name,
                config["model"],
                config["train"],
                scores,
                read_tsv(runs / name / "train_log.tsv", "odmt train"),
                read_tsv(metrics / name / "popularity_groups.tsv", "odmt evaluate"),
                read_user_metrics(metrics / name / USER_METRICS, scores, f"odmt evaluate --run {runs / name} --out {metrics / name}"),
            )
        )
    check_same_cases({run.name: run.users.cases for run in loaded if run.users is not None}, processed, metrics)
    return loaded


def read_user_metrics(path: Path, scores: dict[str, Any], command: str) -> UserMetrics:
    """user_metrics.parquet, checked against its metrics.json: the same scorers and metrics, and the same means."""
    fix = f"Re-run `{command}` with the run's --processed and --features: it writes the file beside metrics.json."
    if not path.is_file():
        raise InputError(f"{path}: missing; the report compares runs user by user from it. {fix}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: not a parquet table ({error}). {fix}") from error
    scorers = {name: value["test"] for name, value in scores.items() if isinstance(value, dict) and "test" in value}
    needed = [*CASES, "scorer", *{key for split in scorers.values() for key in split}]
    if missing := [column for column in needed if column not in table.column_names]:
        raise InputError(f"{path}: no column {missing}. {fix}")
    table = table.sort_by([("split", "ascending"), ("scorer", "ascending"), ("user_idx", "ascending")])
    test: dict[str, dict[str, np.ndarray]] = {}
    for scorer, means in scorers.items():
        rows = table.filter(pc.and_(pc.equal(table["split"], "test"), pc.equal(table["scorer"], scorer)))
        if not len(rows):
            raise InputError(f"{path}: no test rows of scorer {scorer!r}, which metrics.json beside it holds. {fix}")
        test[scorer] = {key: rows[key].to_numpy() for key in means}
        for key, mean in means.items():
            if not math.isclose(float(test[scorer][key].mean()), mean, rel_tol=MEANS_TOLERANCE, abs_tol=1e-12):
                raise InputError(
                    f"{path}: the {scorer} {key} of its test users does not average to metrics.json's {mean:.6f} "
                    f"beside it, so the two come from different evaluations. {fix}"
                )
    cases = table.filter(pc.equal(table["scorer"], "ensemble")).select(list(CASES))
    return UserMetrics(cases, test)


def check_same_cases(cases: dict[str, pa.Table], processed: dict[str, str], metrics: Path) -> None:
    """InputError unless every run ranked the same users with the same valid and test targets: a paired comparison
    needs them, and its users and targets are what identify a processed set here (a path in config.json is not:
    one set can move, and a rebuilt one can keep its path)."""
    first, *others = cases
    for name in others:
        mine, theirs = cases[name], cases[first]
        if mine.equals(theirs):
            continue
        if mine.num_rows != theirs.num_rows or not mine.select(list(CASES[:3])).equals(theirs.select(list(CASES[:3]))):
            what = f"other users ({theirs.num_rows // 2} and {mine.num_rows // 2} users)"
        else:
            what = f"the same users but {pc.sum(pc.not_equal(mine['target'], theirs['target'])).as_py()} other targets"
        raise InputError(
            f"{metrics / first / USER_METRICS} and {metrics / name / USER_METRICS}: runs {first} (trained on {processed[first]}) "
            f"and {name} (on {processed[name]}) were evaluated on {what}, so they cannot be compared user by user; "
            f"evaluate both on one processed set (`odmt evaluate --processed`), or report them from separate --runs and --metrics folders."
        )


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
