"""`compare` in params.yaml: kept apart from the peer code so loading params never imports RecBole or torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.errors import Count, Positive, Seed, check_ranges
from pipeline.runtime import Device

PeerModel = Literal["sasrec", "gru4rec", "nextitnet"]


@dataclass(frozen=True)
class RecBolePeerConfig:
    """How RecBole trains its models: RecBole's own defaults but for what the shared split needs.

    RecBole's CE loss needs `train_neg_sample_args: None`; its default early-stopping
    metric (MRR@10) does not run on NumPy 2, so NDCG@10 selects the checkpoint.
    """

    epochs: Count = 300  # RecBole's default
    stopping_step: Count = 10  # epochs without a better valid_metric before stopping (RecBole's default)
    train_batch_size: Count = 2048
    eval_batch_size: Count = 4096
    learning_rate: Positive = 0.001
    valid_metric: str = "NDCG@10"
    max_item_list_length: Count | None = None  # None: model.positions, the input length of our models
    settings: dict[str, Any] = field(default_factory=dict)  # any other RecBole option, e.g. {hidden_dropout_prob: 0.2}

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class CompareConfig:
    """`odmt compare recbole`: which models, which seeds; ours train with the model and train sections."""

    models: tuple[PeerModel, ...] = ("sasrec", "gru4rec", "nextitnet")
    seeds: tuple[Seed, ...] = (0, 1, 2)
    device: Device = "auto"  # where RecBole trains (ours: train.device)
    recbole: RecBolePeerConfig = field(default_factory=RecBolePeerConfig)

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("models", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty; list at least one")
