"""Checkpoints hold data only: planted, damaged or mismatched ones are refused by name, resumes are exact, NaN never saved."""

import dataclasses
import json
import os
import pickle
import shlex
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import Result
from typer.testing import CliRunner

from pipeline.checkpoint import load_checkpoint, save_checkpoint
from pipeline.errors import InputError
from pipeline.features.items import load_item_features
from pipeline.models.checkpoints import BEST, CONFIG, LAST
from pipeline.models.config import ModelConfig
from pipeline.models.registry import MODELS
from pipeline.training.config import TrainConfig
from pipeline.training.loop import recipe, train
from stages.cli import app
from tests.conftest import REPO, run_options
from tests.model_fixtures import tiny
from tests.test_training import QUICK

runner = CliRunner()
TINY = [
    "--params",
    str(REPO / "params.yaml"),
    "-S",
    "model.hidden_size=16",
    "-S",
    "model.positions=6",
    "-S",
    "train.batch_size=32",
    "-S",
    "train.learning_rate=0.003",
    "-S",
    "train.patience=100",
    "-S",
    "train.device=cpu",
    "-S",
    "train.precision=fp32",
    "-S",
    "train.cpu_threads=1",
]


def odmt_train(data: tuple[Path, Path], out: Path, *overrides: str, resume: bool = False) -> Result:
    processed, features = data
    return runner.invoke(
        app,
        [
            "train",
            "--processed",
            str(processed),
            "--features",
            str(features),
            "--out",
            str(out),
            *(["--resume"] if resume else []),
            *TINY,
            *(arg for o in overrides for arg in ("-S", o)),
        ],
    )


def odmt_evaluate(data: tuple[Path, Path], run: Path, out: Path) -> Result:
    processed, features = data
    return runner.invoke(
        app,
        [
            "evaluate",
            *run_options(run, processed, features, out),
            "--params",
            str(REPO / "params.yaml"),
            "-S",
            "evaluate.device=cpu",
            "-S",
            "evaluate.cpu_threads=1",
        ],
    )


def refused(result: Result, *named: object) -> bool:
    """Exit 2, no traceback, and every one of `named` in the message (rich wraps lines: whitespace is ignored)."""
    said = "".join(result.output.split())
    return result.exit_code == 2 and "Traceback" not in result.output and all("".join(str(name).split()) in said for name in named)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, data) -> Path:
    """A tiny ODMT trained one epoch through the CLI: the run the resume tests copy and continue."""
    run = tmp_path_factory.mktemp("one-epoch") / "run"
    result = odmt_train(data, run, "train.epochs=1")
    assert result.exit_code == 0, result.output
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


class Payload:
    """What a planted pickle carries: unpickling it runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path, data, odmt_run):
    pickle.loads(pickle.dumps(Payload(tmp_path / "proof")))  # the payload is live: unpickled, it runs
    assert (tmp_path / "proof").is_file()
    run = copy_run(odmt_run, tmp_path)
    (run / BEST).write_bytes(pickle.dumps({"model_state": Payload(tmp_path / "marker")}))
    result = odmt_evaluate(data, run, tmp_path / "metrics")
    assert refused(result, run / BEST, "not a readable checkpoint")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("damage", [lambda data: b"", lambda data: data[: len(data) // 2]], ids=["empty", "truncated"])
def test_a_damaged_best_checkpoint_is_refused_by_name(tmp_path, data, odmt_run, damage):
    run = copy_run(odmt_run, tmp_path)
    (run / BEST).write_bytes(damage((run / BEST).read_bytes()))
    assert refused(odmt_evaluate(data, run, tmp_path / "metrics"), run / BEST, "train it again")


def test_weights_of_another_hidden_size_are_refused_in_one_sentence(tmp_path, data, odmt_run):
    processed, features = data
    run = copy_run(odmt_run, tmp_path)
    _, values = load_checkpoint(run / BEST, "")
    wider = MODELS["odmt"](tiny(hidden_size=32), load_item_features(processed, features))
    save_checkpoint(run / BEST, {f"model.{name}": tensor for name, tensor in wider.state_dict().items()}, values)
    result = odmt_evaluate(data, run, tmp_path / "metrics")
    assert refused(result, run / BEST, "where the model has", "more)")
    assert len(result.output.splitlines()) < 10  # not torch's line per mismatched tensor


def test_a_run_without_a_readable_config_or_features_is_refused(tmp_path, data, odmt_run):
    processed, _ = data
    run = copy_run(odmt_run, tmp_path)
    missing_features = (processed, tmp_path / "no-features")
    assert refused(odmt_evaluate(missing_features, run, tmp_path / "metrics"), tmp_path / "no-features" / "image", "missing")
    (run / CONFIG).unlink()
    assert refused(odmt_evaluate(data, run, tmp_path / "metrics"), run / CONFIG, "missing")


class Interrupted(Exception):
    pass


def test_an_interrupted_run_is_not_evaluated_until_resumed(tmp_path, data):
    processed, features = data
    run = tmp_path / "run"

    def interrupt_in_epoch_two(sequences: int) -> None:
        if (run / LAST).is_file():
            raise Interrupted

    with pytest.raises(Interrupted):
        train(processed, features, run, tiny(), replace(QUICK, epochs=2), on_sequences=interrupt_in_epoch_two)
    assert (run / BEST).is_file() and json.loads((run / CONFIG).read_text())["complete"] is False
    assert refused(odmt_evaluate(data, run, tmp_path / "metrics"), run, "complete: false", "--resume")
    train(processed, features, run, tiny(), replace(QUICK, epochs=2), resume=True)
    assert json.loads((run / CONFIG).read_text())["complete"] is True
    assert odmt_evaluate(data, run, tmp_path / "metrics").exit_code == 0


def test_resuming_with_another_recipe_is_refused_and_keeps_the_run_config(tmp_path, data, one_epoch):
    run = copy_run(one_epoch, tmp_path)
    before = (run / CONFIG).read_bytes()
    result = odmt_train(data, run, "train.epochs=2", "train.learning_rate=0.01", "model.dropout=0.2", "train.batch_size=16", resume=True)
    assert refused(
        result, run / CONFIG, "train.learning_rate: 0.003 -> 0.01", "model.dropout: 0.1 -> 0.2", "train.batch_size x processes: 32 -> 16"
    )
    assert "train.epochs" not in result.output  # epochs may change
    assert (run / CONFIG).read_bytes() == before


def test_a_truncated_last_checkpoint_is_refused_on_resume(tmp_path, data, one_epoch):
    run = copy_run(one_epoch, tmp_path)
    (run / LAST).write_bytes((run / LAST).read_bytes()[:-100])
    assert refused(odmt_train(data, run, "train.epochs=2", resume=True), run / LAST, f"Delete {run}")


def test_a_resumed_run_ends_with_the_bytes_of_an_uninterrupted_one(tmp_path, data):
    assert odmt_train(data, tmp_path / "whole", "train.epochs=4").exit_code == 0
    assert odmt_train(data, tmp_path / "split", "train.epochs=2").exit_code == 0
    result = odmt_train(data, tmp_path / "split", "train.epochs=4", "train.eval_users_per_batch=7", resume=True)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "whole" / LAST).read_bytes() == (tmp_path / "split" / LAST).read_bytes()
    assert load_checkpoint(tmp_path / "split" / LAST, "")[1]["epoch"] == 4
    assert json.loads((tmp_path / "split" / CONFIG).read_text())["train"]["eval_users_per_batch"] == 7


def test_a_non_finite_loss_stops_training_before_anything_is_saved(tmp_path, data):
    """A learning rate of 10^6 overflows the weights within the first epoch (feature stores refuse NaN themselves)."""
    result = odmt_train(data, tmp_path / "run", "train.epochs=2", "train.learning_rate=1000000")
    assert refused(result, tmp_path / "run", "epoch 1 is not finite", "train.learning_rate"), result.output
    assert not (tmp_path / "run" / BEST).exists() and not (tmp_path / "run" / LAST).exists()
    assert json.loads((tmp_path / "run" / CONFIG).read_text())["complete"] is False


def test_selection_k_above_the_items_is_refused(tmp_path, data):
    assert refused(odmt_train(data, tmp_path / "run", "train.selection_k=100000"), "train.selection_k", "100000")


def test_tied_weights_are_saved_and_tied_again_on_loading(tmp_path):
    def tied() -> torch.nn.Sequential:
        model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
        model[1].weight = model[0].weight
        return model

    saved = tied()
    save_checkpoint(tmp_path / "tied.safetensors", saved.state_dict(), {"epoch": 1})
    tensors, values = load_checkpoint(tmp_path / "tied.safetensors", "", needs=["epoch"])
    loaded = tied()
    loaded.load_state_dict(tensors)
    assert torch.equal(loaded[0].weight, saved[0].weight) and loaded[1].weight is loaded[0].weight and values == {"epoch": 1}


def test_a_checkpoint_the_disk_cannot_hold_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**6, used=10**6 - 100, free=100))
    path = tmp_path / "big.safetensors"
    with pytest.raises(InputError, match=r"big\.safetensors \(4,\d{3} bytes\)"):
        save_checkpoint(path, {"weights": torch.zeros(1000)}, {})
    assert not path.exists()


@pytest.mark.parametrize("decay", ["none", "cosine"])
def test_epochs_may_change_on_resume_only_where_the_rate_does_not_decay_towards_the_last_epoch(decay):
    def of(epochs: int) -> dict:
        train = dataclasses.asdict(TrainConfig(epochs=epochs, lr_decay=decay))
        return recipe(dataclasses.asdict(ModelConfig()), train, world_size=1)

    assert (of(10) == of(20)) is (decay == "none")
