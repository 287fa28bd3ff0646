"""params.yaml -> one typed, frozen config object.

Each stage's section is a frozen dataclass defined beside the code that uses it (for
example `HMConfig` in formats/hm.py); this module only assembles them and builds
dataclasses from YAML mappings strictly: an unknown key or a value of the wrong type is
an error that names the key, never a silent default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from pipeline.dataset.prepare import PrepareConfig
from pipeline.errors import InputError
from pipeline.evaluation.config import EvaluateConfig
from pipeline.features.config import ExtractConfig
from pipeline.models.config import ModelConfig
from pipeline.peers.config import CompareConfig
from pipeline.training.config import TrainConfig
from pipeline.formats.amazon import AmazonConfig
from pipeline.formats.hm import HMConfig
from pipeline.formats.microlens import MicroLensConfig
from pipeline.formats.odmt_tsv import OdmtTsvConfig
from pipeline.formats.recbole import RecBoleConfig

T = TypeVar("T")


class ConfigError(InputError):
    """A parameter is unknown, ill-typed or out of range; the message names its dotted key."""


@dataclass(frozen=True)
class DatasetConfig:
    """`dataset` in params.yaml: which raw folder dvc.yaml runs on and where its outputs go."""

    name: str = "hm-mini"  # outputs under data/<name>/
    source: Literal["hm", "amazon", "microlens", "recbole", "odmt-tsv"] = "hm"  # the `odmt ingest <source>` reader
    raw: str = "data/raw/hm-mini"


@dataclass(frozen=True)
class IngestConfig:
    """`ingest:` in params.yaml, one sub-section per raw source."""

    hm: HMConfig = field(default_factory=HMConfig)
    amazon: AmazonConfig = field(default_factory=AmazonConfig)
    microlens: MicroLensConfig = field(default_factory=MicroLensConfig)
    recbole: RecBoleConfig = field(default_factory=RecBoleConfig)
    odmt_tsv: OdmtTsvConfig = field(default_factory=OdmtTsvConfig)


RUN_NAME = re.compile(r"[A-Za-z0-9_-]+")
RUN_SECTIONS = ("model", "train")


@dataclass(frozen=True)
class ExperimentsConfig:
    """`experiments` in params.yaml: the runs x seeds that experiments/dvc.yaml trains and evaluates.

    A run is a name and the `model.`/`train.` parameters it changes, as `-S` would; the report
    groups a run's seeds and lays the groups out as the paper's Tables 2-4 and Figure 5.
    """

    pipeline_runs: tuple[str, ...] = ("odmt",)  # what the root dvc.yaml trains, at train.seed
    seeds: tuple[int, ...] = (0, 1, 2)
    runs: dict[str, dict[str, Any]] = field(default_factory=lambda: {"odmt": {}})

    def __post_init__(self) -> None:
        unknown = [name for name in self.pipeline_runs if name not in self.runs]
        if unknown:
            raise ValueError(f"pipeline_runs: {unknown} are not in runs; add them there or remove them")
        for name, changes in self.runs.items():
            if not RUN_NAME.fullmatch(name):
                raise ValueError(f"runs: {name!r} may hold only letters, digits, _ and - (DVC reads each run's "
                                 f"parameters by dotted path, so a dot would split the name); rename it")
            outside = [key for key in changes if key.split(".")[0] not in RUN_SECTIONS]
            if outside:
                raise ValueError(f"runs.{name}: {outside} are not model.* or train.* parameters, the only ones a run may change")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml: one section per stage."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)


def load_params(path: Path, overrides: Iterable[str] = (), experiment: str | None = None) -> Params:
    """Read `path`, apply run `experiment`'s changes, then `section.key=value` overrides (YAML-typed), and type-check."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found. Run from the project root or pass --params.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if experiment is not None:
        runs = build(Params, data, where=str(path)).experiments.runs
        if experiment not in runs:
            raise ConfigError(f"{path}: experiments.runs has no run {experiment!r}; add it or pick one of {sorted(runs)}")
        apply_changes(data, runs[experiment])
    for override in overrides:
        key, sep, raw_value = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. prepare.min_user_interactions=5")
        set_dotted(data, key.strip(), yaml.safe_load(raw_value))
    return build(Params, data, where=str(path))


def run_params(params: Params, run: str) -> Params:
    """`params` as experiments.runs[run] changes them: what `odmt train --experiment run` trains."""
    data = dataclasses.asdict(params)
    apply_changes(data, params.experiments.runs[run])
    return build(Params, data, where=f"experiments.runs.{run}")


def apply_changes(data: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        set_dotted(data, key, value)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` to `value` in place, creating missing sections."""
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
    node[leaf] = value


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, checking every key and type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, f"{where}:{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as error:  # a __post_init__ range check
        raise ConfigError(f"{where}: {error}") from error


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """Check `value` against type hint `kind`; convert only where YAML cannot say it (tuple, Path)."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where)
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(kind))}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return _coerce(options[0], value, where)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_kind, value_kind = typing.get_args(kind)
        return {_coerce(key_kind, k, where): _coerce(value_kind, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_kind = typing.get_args(kind)[0]
        return tuple(_coerce(item_kind, item, f"{where}[{i}]") for i, item in enumerate(value))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind in (bool, int, float, str) and not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value
