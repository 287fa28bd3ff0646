import dataclasses
from pathlib import Path

import yaml

import pytest

from pipeline.config import ConfigError, Params, load_params
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
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
    path = write(tmp_path, "ingest:\n  hm:\n    text_columns: [prod_name]\n")
    params = load_params(path, ["prepare.min_user_interactions=7", "ingest.hm.collapse_duplicates=false"])
    assert params.ingest.hm.text_columns == ("prod_name",)
    assert params.prepare.min_user_interactions == 7
    assert params.ingest.hm.collapse_duplicates is False


@pytest.mark.parametrize(
    ("text", "overrides", "named"),
    [
        ("prepare:\n  min_user_interactons: 5\n", [], "min_user_interactons"),
        ("prepare:\n  min_user_interactions: five\n", [], "min_user_interactions"),
        ("prepare:\n  min_user_interactions: true\n", [], "min_user_interactions"),
        ("prepare:\n  repeated_items: first\n", [], "repeated_items"),
        ("prepare:\n  min_user_interactions: 2\n", [], "min_user_interactions"),
        ("ingest:\n  hm:\n    text_columns: prod_name\n", [], "text_columns"),
        ("", ["prepare.max_sequence_length=long"], "max_sequence_length"),
        ("", ["evaluate.k=3"], "evaluate"),
        ("", ["prepare.min_user_interactions"], "KEY=VALUE"),
    ],
)
def test_bad_parameters_name_the_key(tmp_path, text, overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_params(write(tmp_path, text), overrides)


def test_missing_params_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")


def test_an_experiment_applies_its_changes_before_the_overrides(tmp_path):
    path = write(tmp_path, "experiments:\n  pipeline_runs: [cold]\n  runs:\n    cold: {model.temperature: 0.1, train.seed: 4}\n")
    params = load_params(path, ["train.seed=7"], experiment="cold")
    assert (params.model.temperature, params.train.seed) == (0.1, 7)
    assert load_params(path).model.temperature == 0.5


@pytest.mark.parametrize(("runs", "experiment", "named"), [
    ("warm: {}", "hot", "pick one of \\['warm'\\]"),
    ("warm: {}\n    T0.1: {model.temperature: 0.1}", "warm", "dot"),
    ("warm: {prepare.min_user_interactions: 3}", "warm", "model.\\* or train.\\*"),
    ("warm: {model.temprature: 0.1}", "warm", "temprature"),
    ("warm: [model.temperature]", "warm", "mapping"),
    ("cold: {}", None, "pipeline_runs"),  # the root pipeline's run must be one of the runs
])
def test_bad_experiments_name_the_run(tmp_path, runs, experiment, named):
    path = write(tmp_path, f"experiments:\n  pipeline_runs: [warm]\n  runs:\n    {runs}\n")
    with pytest.raises(ConfigError, match=named):
        load_params(path, experiment=experiment)
