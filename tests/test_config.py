import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import ConfigError, Params, apply_changes, load_params
from pipeline.dataset.config import PrepareConfig
from pipeline.errors import Count, Positive, Range, check_ranges, declared_ranges
from tests.conftest import REPO


def write(tmp_path: Path, changes: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """The repository's params.yaml with dotted `changes` made and the dotted keys `drop` removed."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    apply_changes(data, changes or {})
    for key in drop:
        *sections, leaf = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        del node[leaf]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_repository_params_name_every_parameter():
    # Every field of the typed config appears in params.yaml: nothing is left to a hidden default.
    def check(config, written, where="params.yaml"):
        fields = dataclasses.fields(config)
        assert set(written) == {f.name for f in fields}, where
        for f in fields:
            if dataclasses.is_dataclass(getattr(config, f.name)):
                check(getattr(config, f.name), written[f.name], f"{where}:{f.name}")

    check(Params(), yaml.safe_load((REPO / "params.yaml").read_text()))
    load_params(REPO / "params.yaml")  # and every value type-checks


def test_lists_become_tuples_and_overrides_apply(tmp_path):
    path = write(tmp_path, {"ingest.hm.text_columns": ["prod_name"]})
    params = load_params(path, ["prepare.min_user_interactions=7", "ingest.hm.collapse_duplicates=false"])
    assert params.ingest.hm.text_columns == ("prod_name",)
    assert params.prepare.min_user_interactions == 7
    assert params.ingest.hm.collapse_duplicates is False


@pytest.mark.parametrize(
    ("changes", "overrides", "named"),
    [
        ({"prepare.min_user_interactons": 5}, [], "prepare.min_user_interactons"),
        ({"prepare.min_user_interactions": "five"}, [], "prepare.min_user_interactions"),
        ({"prepare.min_user_interactions": True}, [], "prepare.min_user_interactions"),
        ({"prepare.repeated_items": "first"}, [], "prepare.repeated_items"),
        ({"prepare.min_user_interactions": 2}, [], "prepare.min_user_interactions = 2: must be at least 3"),
        ({"ingest.hm.text_columns": "prod_name"}, [], "ingest.hm.text_columns"),
        ({}, ["prepare.max_sequence_length=long"], "prepare.max_sequence_length"),
        ({}, ["evaluate.k=3"], "evaluate.k"),
        ({}, ["prepare.min_user_interactions"], "KEY=VALUE"),
        ({}, ["model.dropout.rate=0.2"], "dropout holds 0.1, not a section"),
    ],
)
def test_bad_parameters_name_the_key(tmp_path, changes, overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_params(write(tmp_path, changes), overrides)


def test_missing_params_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")


def test_an_experiment_applies_its_changes_before_the_overrides(tmp_path):
    path = write(
        tmp_path, {"experiments.pipeline_runs": ["cold"], "experiments.runs": {"cold": {"model.temperature": 0.1, "train.seed": 4}}}
    )
    params = load_params(path, ["train.seed=7"], experiment="cold")
    assert (params.model.temperature, params.train.seed) == (0.1, 7)
    assert load_params(path).model.temperature == 0.5


@pytest.mark.parametrize(
    ("runs", "experiment", "named"),
    [
        ({"warm": {}}, "hot", "pick one of \\['warm'\\]"),
        ({"warm": {}, "T0.1": {"model.temperature": 0.1}}, "warm", "experiments.runs: 'T0.1' .* dot"),
        ({"warm": {"prepare.min_user_interactions": 3}}, "warm", "model.\\* or train.\\*"),
        ({"warm": {"model.temprature": 0.1}}, "warm", "model.temprature"),
        ({"warm": {"model.temperature": -0.1}}, "warm", "model.temperature = -0.1: must be greater than 0"),
        ({"warm": ["model.temperature"]}, "warm", "experiments.runs.warm = .*mapping"),
        ({"cold": {}}, None, "experiments.pipeline_runs"),  # the root pipeline's run must be one of the runs
    ],
)
def test_bad_experiments_name_the_run(tmp_path, runs, experiment, named):
    path = write(tmp_path, {"experiments.pipeline_runs": ["warm"], "experiments.runs": runs})
    with pytest.raises(ConfigError, match=named):
        load_params(path, experiment=experiment)


# The range helper: what a declared Range lets through, and how it says what it wants.


@pytest.mark.parametrize(
    ("allowed", "inside", "outside", "said"),
    [
        (Range(1), [1, 10**9], [0, -1, math.inf], "at least 1"),
        (Range(0, low_open=True), [1e-9, 3.0], [0.0, -1.0, math.nan, math.inf], "greater than 0"),
        (Range(0, 1, high_open=True), [0.0, 0.999], [1.0, -0.1, math.nan], "in [0, 1)"),
        (Range(0, 2**32 - 1), [0, 2**32 - 1], [-1, 2**32], "in [0, 4294967295]"),
        (Range(3, reason="three are needed"), [3], [2], "at least 3 (three are needed)"),
    ],
)
def test_a_range_holds_its_bounds_and_says_them(allowed, inside, outside, said):
    assert all(value in allowed for value in inside)
    assert not any(value in allowed for value in outside)
    assert str(allowed) == said


@dataclass(frozen=True)
class Knobs:
    size: Count = 1
    rate: Positive = 0.5
    cutoffs: tuple[Count, ...] = (1,)
    grid: Count | None = None
    label: str = "any text"

    def __post_init__(self) -> None:
        check_ranges(self)


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"size": 0}, "size = 0: must be at least 1"),
        ({"rate": 0.0}, "rate = 0.0: must be greater than 0"),
        ({"cutoffs": (5, 0)}, r"cutoffs = \[5, 0\]: each entry must be at least 1"),
        ({"grid": 0}, "grid = 0: must be at least 1"),
    ],
)
def test_check_ranges_names_the_field_its_value_and_its_range(changes, said):
    assert declared_ranges(Knobs).keys() == {"size", "rate", "cutoffs", "grid"}
    Knobs(grid=None, cutoffs=())  # None and an empty list have nothing out of range
    with pytest.raises(ValueError, match=f"^{said}$"):
        Knobs(**changes)


def sections(cls: type = Params, key: str = "") -> list[tuple[type, str]]:
    """Every config dataclass within `cls` (itself included) and its dotted key."""
    found = [(cls, key)]
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            found += sections(hint, f"{key}.{name}" if key else name)
    return found


def numbers(cls: type) -> list[str]:
    """The fields of `cls` holding numbers: int or float, alone, in a tuple or beside None."""

    def numeric(hint: Any) -> bool:
        return hint in (int, float) or any(numeric(arg) for arg in typing.get_args(hint))

    return [name for name, hint in typing.get_type_hints(cls).items() if typing.get_origin(hint) is not dict and numeric(hint)]


def test_every_number_of_every_section_declares_its_range():
    undeclared = [f"{key}.{name}" for cls, key in sections() for name in numbers(cls) if name not in declared_ranges(cls)]
    assert not undeclared


def outside(allowed: Range) -> float:
    if allowed.high != math.inf:
        return allowed.high if allowed.high_open else allowed.high + 1
    return allowed.low if allowed.low_open else allowed.low - 1


RANGED = [
    (f"{key}.{name}", allowed, typing.get_origin(typing.get_type_hints(cls)[name]) is tuple)
    for cls, key in sections()
    for name, allowed in declared_ranges(cls).items()
]


@pytest.mark.parametrize(("key", "allowed", "listed"), RANGED, ids=[key for key, _, _ in RANGED])
def test_every_declared_range_is_enforced_naming_the_dotted_key(key, allowed, listed):
    value = [outside(allowed)] if listed else outside(allowed)
    with pytest.raises(ConfigError, match=f"params.yaml: {key} = .*must be {re.escape(str(allowed))}"):
        load_params(REPO / "params.yaml", [f"{key}={value}"])


def test_heads_must_divide_the_hidden_size():
    with pytest.raises(ConfigError, match="model.hidden_size = 128 is not a multiple of imt_heads = 3"):
        load_params(REPO / "params.yaml", ["model.imt_heads=3"])
    with pytest.raises(ConfigError, match="model.hidden_size = 100 is not a multiple of user_heads = 8"):
        load_params(REPO / "params.yaml", ["model.hidden_size=100", "model.imt_heads=4", "model.user_heads=8"])


def test_a_config_built_in_code_is_checked_too():
    with pytest.raises(ValueError, match="max_sequence_length = 2: must be at least 3"):
        PrepareConfig(max_sequence_length=2)


@pytest.mark.parametrize(
    ("drop", "said"),
    [
        (("compare",), "compare is missing"),
        (("model.dropout", "train.seed"), "model.dropout, train.seed are missing"),
        (("extract.image.size",), "extract.image.size is missing"),
    ],
)
def test_the_params_file_must_name_every_key(tmp_path, drop, said):
    with pytest.raises(ConfigError, match=f"{said}; copy"):
        load_params(write(tmp_path, drop=drop))


def test_an_empty_params_file_is_refused_not_filled_with_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text("")
    with pytest.raises(ConfigError, match="dataset, ingest, prepare, .*, compare are missing"):
        load_params(tmp_path / "params.yaml")


def test_free_form_mappings_need_no_keys(tmp_path):
    path = write(tmp_path, {"experiments.pipeline_runs": ["only"], "experiments.runs": {"only": {}}})
    assert load_params(path).experiments.runs == {"only": {}}
    assert load_params(REPO / "params.yaml").compare.recbole.settings == {}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- model\n- train\n", "is a YAML list, not a mapping of sections"),
        ("42\n", "is a YAML int, not a mapping of sections"),
        ("model: [1\n", r"not valid YAML \(.* at line 2, column 1\)"),
    ],
)
def test_a_params_file_that_is_not_a_mapping_of_sections_is_one_error(tmp_path, text, said):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=said) as error:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ([3], r"train = \[3\] is not a mapping of keys to values"),
        (None, "train is empty"),
    ],
)
def test_a_section_that_is_not_a_mapping_is_named(tmp_path, section, said):
    with pytest.raises(ConfigError, match=said):
        load_params(write(tmp_path, {"train": section}))


def test_a_yaml_error_in_an_override_is_one_error_naming_it():
    with pytest.raises(ConfigError, match=r"override -S 'train.epochs=\[3': '\[3' is not a YAML value") as error:
        load_params(REPO / "params.yaml", ["train.epochs=[3"])
    assert "\n" not in str(error.value)
