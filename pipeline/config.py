"""params.yaml -> one typed, frozen config object.

Each stage's section is a frozen dataclass in a config module beside the code that uses it
(for example `HMConfig` in formats/config.py), with the range of every number declared on
its type (pipeline/errors.py); this module only assembles them and builds dataclasses from
YAML mappings strictly: an unknown key, a value of the wrong type or out of its range is an
error that names the dotted key, never a silent default. The user's params file must name
every parameter, so that the recipe is that file and not the dataclass defaults.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import yaml

from pipeline.dataset.config import PrepareConfig
from pipeline.errors import ConfigError, Seed, check_ranges
from pipeline.evaluation.config import CaseStudyConfig, EvaluateConfig
from pipeline.features.config import ExtractConfig
from pipeline.formats.config import AmazonConfig, HMConfig, MicroLensConfig, OdmtTsvConfig, RecBoleConfig
from pipeline.models.config import ModelConfig
from pipeline.peers.config import CompareConfig
from pipeline.reporting.config import ReportConfig
from pipeline.training.config import TrainConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


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
    seeds: tuple[Seed, ...] = (0, 1, 2)
    runs: dict[str, dict[str, Any]] = field(default_factory=lambda: {"odmt": {}})

    def __post_init__(self) -> None:
        check_ranges(self)
        unknown = [name for name in self.pipeline_runs if name not in self.runs]
        if unknown:
            raise ValueError(f"pipeline_runs: {unknown} are not in runs; add them there or remove them")
        for name, changes in self.runs.items():
            if not RUN_NAME.fullmatch(name):
                raise ValueError(
                    f"runs: {name!r} may hold only letters, digits, _ and - (DVC reads each run's "
                    f"parameters by dotted path, so a dot would split the name); rename it"
                )
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
    case_study: CaseStudyConfig = field(default_factory=CaseStudyConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)


SECTIONS = [f.name for f in dataclasses.fields(Params)]


def load_params(path: Path, overrides: Iterable[str] = (), experiment: str | None = None) -> Params:
    """Read `path` (complete and valid by itself), apply run `experiment`'s changes, then `section.key=value`
    overrides (YAML-typed), and type-check the result."""
    data = read_params_file(path)
    written = build(Params, data, where=str(path))
    missing = missing_keys(Params, data)
    if missing:
        one = len(missing) == 1
        raise ConfigError(
            f"{path}: {', '.join(missing)} {'is' if one else 'are'} missing; copy {'it' if one else 'them'} "
            f"from the repository's params.yaml, which names every parameter."
        )
    if experiment is not None:
        runs = written.experiments.runs
        if experiment not in runs:
            raise ConfigError(f"{path}: experiments.runs has no run {experiment!r}; add it or pick one of {sorted(runs)}.")
        apply_changes(data, runs[experiment])
    for override in overrides:
        set_dotted(data, *parse_override(override))
    return build(Params, data, where=str(path))


def read_params_file(path: Path) -> dict[str, Any]:
    """The file's mapping of sections (empty for an empty file)."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(error)}); fix that line.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: is a YAML {type(data).__name__}, not a mapping of sections ({', '.join(SECTIONS)}); "
            f"start from the repository's params.yaml."
        )
    return data


def parse_override(override: str) -> tuple[str, Any]:
    """`-S section.key=value` -> (dotted key, the value read as YAML)."""
    key, sep, raw_value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. prepare.min_user_interactions=5.")
    try:
        return key.strip(), yaml.safe_load(raw_value)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"override -S {override!r}: {raw_value!r} is not a YAML value ({yaml_problem(error)}); "
            f"write a number, true or false, a list such as [10, 20], or quote the text."
        ) from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one phrase: what is wrong, and where."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem or error.context} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())


def missing_keys(cls: type, data: Mapping[str, Any], key: str = "") -> list[str]:
    """The dotted keys of dataclass `cls` (sections within it too) that `data` does not name; the contents of
    free-form mappings (experiments.runs, compare.recbole.settings) are not keys."""
    hints = typing.get_type_hints(cls)
    missing = []
    for name in hints:
        if name not in data:
            missing.append(dotted(key, name))
        elif dataclasses.is_dataclass(hints[name]) and isinstance(data[name], Mapping):
            missing += missing_keys(hints[name], data[name], dotted(key, name))
    return missing


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
            raise ConfigError(f"{key}: {part} holds {node!r}, not a section of keys; name a key inside a section, such as model.dropout.")
    node[leaf] = value


def dotted(section: str, name: str) -> str:
    """The key as a user writes it: `model.dropout`."""
    return f"{section}.{name}" if section else name


def build(cls: type[T], data: Any, where: str, key: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key, type and range; keys the mapping lacks keep their
    defaults. `key` is the mapping's dotted place in `where` (the file), named in every error."""
    place = key or "the top level"
    if data is None:
        raise ConfigError(f"{where}: {place} is empty; give it its keys, as the repository's params.yaml does.")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: {place} = {data!r} is not a mapping of keys to values; "
            f"indent its keys under it, as the repository's params.yaml does."
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {[dotted(key, name) for name in unknown]}; the keys of {place} are {sorted(fields)}.")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(hints[name], value, where, dotted(key, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as error:  # a __post_init__ check: its message starts with the field it is about
        raise ConfigError(f"{where}: {dotted(key, str(error))}.") from error


def _coerce(kind: Any, value: Any, where: str, key: str) -> Any:
    """Check `value` against type hint `kind`; convert only where YAML cannot say it (tuple, Path)."""
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return build(kind, value, where, key)
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{where}: {key} = {value!r} is not one of {list(typing.get_args(kind))}.")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return _coerce(options[0], value, where, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} = {value!r}: expected a mapping.")
        key_kind, value_kind = typing.get_args(kind)
        return {_coerce(key_kind, k, where, key): _coerce(value_kind, v, where, dotted(key, str(k))) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} = {value!r}: expected a list.")
        item_kind = typing.get_args(kind)[0]
        return tuple(_coerce(item_kind, item, where, f"{key}[{i}]") for i, item in enumerate(value))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if kind in (bool, int, float, str) and not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        raise ConfigError(f"{where}: {key} = {value!r}: expected {kind.__name__}, got {type(value).__name__}.")
    return value
