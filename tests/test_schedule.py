from dataclasses import replace

import pytest
import torch

from pipeline.checkpoint import join_optimizer, load_checkpoint
from pipeline.config import ConfigError, build
from pipeline.errors import InputError
from pipeline.models.checkpoints import LAST
from pipeline.training.config import TrainConfig
from pipeline.training.loop import train
from pipeline.training.schedule import check_schedule, diverged, learning_rate_at, rising_epochs
from tests.model_fixtures import tiny
from tests.test_training import QUICK, read_log


def rates(config: TrainConfig, total: int) -> list[float]:
    return [learning_rate_at(step, total, config) for step in range(total)]


def test_warm_up_rises_linearly_then_each_decay_falls_to_zero_at_the_end_of_the_run():
    base = TrainConfig(learning_rate=1.0, warmup_steps=4)
    assert rates(base, 10) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    linear = rates(replace(base, lr_decay="linear"), 10)
    assert linear[:4] == [0.25, 0.5, 0.75, 1.0] and linear[4:] == pytest.approx([1 - i / 6 for i in range(6)])
    cosine = rates(replace(base, lr_decay="cosine", warmup_steps=0), 10)
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and 0 < cosine[9] < 0.03
    assert rates(TrainConfig(learning_rate=0.1), 3) == [0.1, 0.1, 0.1]  # the default: constant, as before


def test_a_warm_up_as_long_as_the_run_and_a_patience_of_zero_are_errors_naming_the_key():
    assert check_schedule(TrainConfig(epochs=3, warmup_steps=5), steps_per_epoch=2) == 6
    with pytest.raises(InputError, match=r"train\.warmup_steps = 6: the run has only 6 steps"):
        check_schedule(TrainConfig(epochs=3, warmup_steps=6), steps_per_epoch=2)
    with pytest.raises(ConfigError, match=r"params.yaml:train: patience = 0: must be at least 1"):
        build(TrainConfig, {"patience": 0}, where="params.yaml:train")
    with pytest.raises(ConfigError, match="warmup_steps = -1"):
        build(TrainConfig, {"warmup_steps": -1}, where="params.yaml:train")


def epoch(ce: float, kl: float = 0.0, weight: float = 0.0) -> dict[str, float]:
    return {"ce_id": ce / 2, "ce_text": ce / 2, "kl_id": kl, "distillation_weight": weight, "total": ce + weight * kl}


def test_a_run_is_flagged_when_its_ce_rises_for_several_epochs_and_the_flag_stays():
    rows = [epoch(9), epoch(8), epoch(7.5), epoch(7.6), epoch(7.7)]
    assert rising_epochs(rows) == 2 and not diverged(rows, 3)
    rows.append(epoch(7.8))
    assert rising_epochs(rows) == 3 and diverged(rows, 3)
    rows[-1]["diverged"] = 1
    rows.append(epoch(7.0))  # it recovers, but it did diverge
    assert rising_epochs(rows) == 0 and diverged(rows, 3)


def test_a_total_raised_by_the_distillation_ramp_up_is_not_divergence():
    rows = [epoch(8 - 0.01 * i, kl=2.0, weight=0.1 * i) for i in range(6)]
    assert all(b["total"] > a["total"] for a, b in zip(rows, rows[1:]))  # the total rises by design
    assert not diverged(rows, 3)


class Interrupted(Exception):
    pass


def test_an_interrupted_run_with_warm_up_and_decay_resumes_to_the_same_weights(tmp_path, data):
    processed, features = data
    config = replace(QUICK, warmup_steps=3, lr_decay="cosine")
    train(processed, features, tmp_path / "whole", tiny(), config)

    def interrupt_in_epoch_three(sequences: int) -> None:
        log = tmp_path / "split" / "train_log.tsv"
        if log.is_file() and len(read_log(tmp_path / "split")) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(processed, features, tmp_path / "split", tiny(), config, on_sequences=interrupt_in_epoch_three)
    train(processed, features, tmp_path / "split", tiny(), config, resume=True)
    (whole, whole_values), (split, _) = (load_checkpoint(tmp_path / run / LAST, "") for run in ("whole", "split"))
    assert all(torch.equal(tensor, split[name]) for name, tensor in whole.items())
    optimizer = join_optimizer(whole, whole_values["optimizer"])
    steps = len(read_log(tmp_path / "whole")) and optimizer["state"][0]["step"].item()
    assert optimizer["param_groups"][0]["lr"] == learning_rate_at(int(steps) - 1, int(steps), config)
    assert [row["diverged"] for row in read_log(tmp_path / "whole")] == ["0"] * 4


@pytest.mark.parametrize(
    "model, epochs", [(tiny(alpha=5), 5), (tiny(alpha=5, distillation=False), 2), (tiny(alpha=0.5), 2), (tiny(name="sasrec"), 2)]
)
def test_early_stopping_waits_for_the_distillation_ramp_up_to_end(tmp_path, data, model, epochs):
    """With lr 1e-30 no weight moves, so validation never improves after epoch 1, so patience 1 stops at epoch 2, unless
    a ramp-up is still on."""
    processed, features = data
    rows = train(processed, features, tmp_path / "run", model, replace(QUICK, epochs=8, patience=1, learning_rate=1e-30))
    assert len(rows) == epochs
