"""Bad parameters through the CLI: refused before a stage does any work, with exit 2 and one
message naming the dotted key, never a traceback."""

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from stages.cli import app
from tests.conftest import HM_MINI, REPO
from tests.test_config import write

runner = CliRunner()


def invoke(stage: str, data: tuple[Path, Path], out: Path, *overrides: str, params: Path = REPO / "params.yaml") -> Result:
    """Run `stage` on the session's hm-mini data (as far as the parameters let it), writing to `out`."""
    processed, features = data
    paths = {
        "ingest": ["ingest", "hm", "--raw", HM_MINI, "--out", out],
        "prepare": ["prepare", "--interim", processed.parent / "interim", "--raw", HM_MINI, "--out", out],
        "extract": ["extract", "--processed", processed, "--raw", HM_MINI, "--out", out],
        "train": ["train", "--processed", processed, "--features", features, "--out", out],
        "evaluate": ["evaluate", "--run", out.parent / "run", "--processed", processed, "--features", features, "--out", out],
    }[stage]
    options = [*map(str, paths), "--params", str(params), *(part for override in overrides for part in ("-S", override))]
    return runner.invoke(app, options)


def assert_refused(result: Result, out: Path, *named: str) -> None:
    """Exit 2 with a message naming every one of `named`, no traceback, and nothing written."""
    message = " ".join(result.output.split())  # as one line, however the console wrapped it
    assert result.exit_code == 2, result.output
    for name in named:
        assert name in message, result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("stage", "override", "key"),
    [
        ("ingest", "ingest.hm.block_size_bytes=1024", "ingest.hm.block_size_bytes = 1024"),
        ("prepare", "prepare.max_sequence_length=2", "prepare.max_sequence_length = 2"),
        ("prepare", "prepare.image_workers=0", "prepare.image_workers = 0"),
        ("extract", "extract.text.max_tokens=1", "extract.text.max_tokens = 1"),
        ("extract", "extract.shard_size=0", "extract.shard_size = 0"),
        ("train", "model.dropout=1.5", "model.dropout = 1.5: must be in [0, 1)"),
        ("train", "model.hidden_size=0", "model.hidden_size = 0: must be at least 1"),
        ("train", "model.imt_heads=0", "model.imt_heads = 0"),
        ("train", "model.temperature=0", "model.temperature = 0.0: must be greater than 0"),
        ("train", "train.learning_rate=-1", "train.learning_rate = -1.0: must be greater than 0"),
        ("train", "train.cpu_threads=-1", "train.cpu_threads = -1: must be at least 0"),
        ("train", "train.gradient_clip=0", "train.gradient_clip = 0.0"),
        ("train", "train.seed=-1", "train.seed = -1"),
        ("evaluate", "evaluate.ks=[10, 0]", "evaluate.ks = [10, 0]: each entry must be at least 1"),
        ("evaluate", "evaluate.users_per_batch=0", "evaluate.users_per_batch = 0"),
    ],
)
def test_a_value_out_of_its_range_is_refused_naming_the_key_and_the_range(data, tmp_path, stage, override, key):
    out = tmp_path / "out"
    assert_refused(invoke(stage, data, out, override), out, key)


def test_heads_that_do_not_divide_the_hidden_size_are_refused(data, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", data, out, "model.hidden_size=96", "model.user_heads=5")
    assert_refused(result, out, "model.hidden_size = 96 is not a multiple of user_heads = 5")


def test_a_yaml_error_in_an_override_names_the_override(data, tmp_path):
    out = tmp_path / "run"
    assert_refused(invoke("train", data, out, "train.epochs=[3"), out, "-S 'train.epochs=[3'")


def test_a_params_file_that_is_a_list_is_refused(data, tmp_path):
    params, out = tmp_path / "params.yaml", tmp_path / "run"
    params.write_text("- model\n- train\n")
    assert_refused(invoke("train", data, out, params=params), out, "params.yaml: is a YAML list, not a mapping of sections")


def test_an_empty_params_file_is_refused_instead_of_training_with_other_defaults(data, tmp_path):
    params, out = tmp_path / "params.yaml", tmp_path / "run"
    params.write_text("")
    assert_refused(invoke("train", data, out, params=params), out, "model, train, evaluate", "are missing")


@pytest.mark.parametrize(
    ("drop", "said"),
    [
        (("evaluate",), "evaluate is missing"),
        (("train.seed",), "train.seed is missing"),
    ],
)
def test_a_missing_section_or_key_is_named(data, tmp_path, drop, said):
    out = tmp_path / "run"
    result = invoke("train", data, out, params=write(tmp_path, drop=drop))
    assert_refused(result, out, said, "copy it from the repository's params.yaml")


def test_an_unknown_key_is_named(data, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", data, out, params=write(tmp_path, {"model.dropuot": 0.1}))
    assert_refused(result, out, "unknown key(s) ['model.dropuot']")


def test_cuda_without_a_gpu_names_the_device_settings(data, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: train.device=cuda is valid here")
    out = tmp_path / "run"
    assert_refused(invoke("train", data, out, "train.device=cuda"), out, "train.device", "sees no GPU")
