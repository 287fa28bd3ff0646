from pathlib import Path

import pytest

from pipeline.config import ConfigError, Params, load_params
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_repository_params_are_the_documented_defaults():
    # params.yaml and the dataclass defaults must not drift apart.
    assert load_params(REPO / "params.yaml") == Params()


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
        ("", ["train.epochs=3"], "train"),
        ("", ["prepare.min_user_interactions"], "KEY=VALUE"),
    ],
)
def test_bad_parameters_name_the_key(tmp_path, text, overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_params(write(tmp_path, text), overrides)


def test_missing_params_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="--params"):
        load_params(tmp_path / "nope.yaml")
