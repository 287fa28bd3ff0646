import json

from typer.testing import CliRunner

from stages.cli import app
from tests.conftest import HM_MINI, REPO

runner = CliRunner()
PARAMS = ["--params", str(REPO / "params.yaml")]


def test_ingest_then_prepare_through_the_cli(tmp_path):
    interim, processed = tmp_path / "interim", tmp_path / "processed"
    result = runner.invoke(app, ["ingest", "hm", "--raw", str(HM_MINI), "--out", str(interim), *PARAMS])
    assert result.exit_code == 0, result.output
    assert "duplicate_same_day" in result.output
    result = runner.invoke(app, ["prepare", "--interim", str(interim), "--raw", str(HM_MINI), "--out", str(processed), *PARAMS])
    assert result.exit_code == 0, result.output
    default = json.loads((processed / "stats.json").read_text())
    assert "density" in result.output and str(default["users"]) in result.output

    # A -S override reaches the stage: stricter users filter -> fewer users.
    stricter = tmp_path / "stricter"
    result = runner.invoke(
        app,
        [
            "prepare",
            "--interim",
            str(interim),
            "--raw",
            str(HM_MINI),
            "--out",
            str(stricter),
            *PARAMS,
            "-S",
            "prepare.min_user_interactions=8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert 0 < json.loads((stricter / "stats.json").read_text())["users"] < default["users"]

    # The tuning set of the processed set: one interaction fewer per user, and its refusal to overwrite its source.
    result = runner.invoke(app, ["tuning-set", "--processed", str(processed), "--out", str(tmp_path / "tuning")])
    assert result.exit_code == 0, result.output
    tuning = json.loads((tmp_path / "tuning" / "stats.json").read_text())
    assert tuning["interactions"] == default["interactions"] - default["users"]
    result = runner.invoke(app, ["tuning-set", "--processed", str(processed), "--out", str(processed)])
    assert result.exit_code == 2 and "overwrite" in result.output


def test_bad_input_exits_2_with_a_message_not_a_traceback(tmp_path):
    (tmp_path / "raw").mkdir()
    result = runner.invoke(app, ["ingest", "hm", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "o"), *PARAMS])
    assert result.exit_code == 2
    assert "transactions_train.csv" in result.output and "Traceback" not in result.output


def test_unknown_parameter_is_named(tmp_path):
    result = runner.invoke(app, ["ingest", "hm", "--raw", str(HM_MINI), "--out", str(tmp_path), *PARAMS, "-S", "ingest.hm.colour=red"])
    assert result.exit_code == 2
    assert "colour" in result.output


def test_bench_evaluate_ranks_synthetic_catalogues():
    result = runner.invoke(
        app,
        [
            "bench",
            "evaluate",
            "--items",
            "40",
            "--items",
            "90",
            "--users",
            "8",
            *PARAMS,
            "-S",
            "model.hidden_size=16",
            "-S",
            "evaluate.device=cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "evaluate, 40 items" in result.output and "evaluate, 90 items" in result.output
    assert "users_ranked_per_s" in result.output


def test_bench_train_times_the_training_step_with_and_without_deduplication(tmp_path):
    result = runner.invoke(app, ["sample", "synthetic", "--out", str(tmp_path), "--users", "40", "--items", "60"])
    assert result.exit_code == 0, result.output
    settings = ["-S", "model.hidden_size=16", "-S", "train.batch_size=8", "-S", "train.device=cpu"]
    data = ["--processed", str(tmp_path / "processed"), "--features", str(tmp_path / "features")]
    result = runner.invoke(app, ["bench", "train", *data, "--steps", "2", *PARAMS, *settings])
    assert result.exit_code == 0, result.output
    assert "deduplicate_items=True" in result.output and "deduplicate_items=False" in result.output
    assert "train_sequences_per_s" in result.output, result.output
    result = runner.invoke(app, ["bench", "train", *data, "--steps", "2", "--profile", *PARAMS, *settings])
    assert result.exit_code == 0, result.output
    assert "milliseconds of a step, by part" in result.output and "wall_ms" in result.output  # parts under 1% vary with the machine


def test_messages_print_emoji_codes_and_brackets_as_text(tmp_path):
    raw = tmp_path / "hm:train:[b]"  # rich would print `:train:` as an emoji and swallow `[b]`
    raw.mkdir()
    result = runner.invoke(app, ["ingest", "hm", "--raw", str(raw), "--out", str(tmp_path / "o"), *PARAMS])
    assert result.exit_code == 2
    assert str(raw) in result.output and "Traceback" not in result.output


def test_help_prints_brackets_as_written():
    result = runner.invoke(app, ["compare", "recbole", "--help"])
    assert result.exit_code == 0
    assert "'.[peers]'" in result.output
