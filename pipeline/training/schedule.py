"""The learning rate of every optimiser step, and the watch on the training loss.

The rate is a pure function of the global step (warm-up, then decay towards 0 at the end
of `train.epochs`, as transformers' linear and cosine schedules), so a resumed run
needs no scheduler state and ends where an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.errors import InputError
from pipeline.training.config import TrainConfig


def learning_rate_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """The rate of step `step` (0-based) of a run of `total_steps` steps."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if config.lr_decay == "none":
        return config.learning_rate
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    if config.lr_decay == "linear":
        return config.learning_rate * (1 - progress)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def check_schedule(config: TrainConfig, steps_per_epoch: int) -> int:
    """The run's total steps; a warm-up that does not end before them is an error naming the key."""
    total = config.epochs * steps_per_epoch
    if config.warmup_steps >= total:
        raise InputError(
            f"train.warmup_steps = {config.warmup_steps}: the run has only {total} steps "
            f"({config.epochs} epochs x {steps_per_epoch} batches). Lower train.warmup_steps below {total}, "
            "or raise train.epochs."
        )
    return total


def supervised_loss(row: dict[str, float]) -> float:
    """An epoch's CE terms (ce_*): the total less distillation, whose ramp-up raises the total by design."""
    return sum(value for name, value in row.items() if name.startswith("ce_"))


def loss_rise(rows: Sequence[dict[str, float]]) -> float:
    """How far the supervised loss ends above its lowest epoch, relative (0: it ends at its minimum).

    A converged run ends near 0; a diverged one far above (the stability bar: docs/training.md).
    """
    losses = [supervised_loss(row) for row in rows]
    return losses[-1] / min(losses) - 1


def rising_epochs(rows: Sequence[dict[str, float]]) -> int:
    """How many epochs in a row, up to the last, the supervised loss has risen."""
    losses = [supervised_loss(row) for row in rows]
    count = 0
    while count + 1 < len(losses) and losses[-1 - count] > losses[-2 - count]:
        count += 1
    return count


def diverged(rows: Sequence[dict[str, float]], epochs: int) -> bool:
    """Whether a run has diverged by its last epoch: its supervised loss rose `epochs` epochs in a row, now or before.

    A rising training loss is an optimisation failure, not overfitting (which shows on
    validation only); the flag stays once set, so train_log.tsv and `odmt report` keep it.
    """
    return already_diverged(rows[:-1]) or rising_epochs(rows) >= epochs


def already_diverged(rows: Sequence[dict[str, float]]) -> bool:
    """Whether these epochs' log flags the run: the flag is sticky, so the last row says it."""
    return bool(rows) and bool(rows[-1].get("diverged"))
