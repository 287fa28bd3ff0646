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
    def keys(node, prefix=""):
        if dataclasses.is_dataclass(node):
            node = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
        if not isinstance(node, dict):
            return {prefix}
        return set().union(*(keys(value, f"{prefix}{key}.") for key, value in node.items()))

    written = yaml.safe_load((REPO / "params.yaml").read_text())
    assert keys(written) == keys(Params())
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
