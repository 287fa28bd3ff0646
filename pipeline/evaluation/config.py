"""`evaluate` in params.yaml: kept apart from the evaluator so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.runtime import Device, FeatureStorage, Precision

POPULARITY_RANKING = "popularity"  # the popularity baseline's scorer name in metrics.json and ranks.parquet


@dataclass(frozen=True)
class EvaluateConfig:
    """The paper's protocol (section 4.2): full ranking, leave-one-out, Recall@k and NDCG@k."""

    ks: tuple[int, ...] = (10, 20)
    exclude_history: bool = True  # the user's input items are not candidates (the paper's protocol)
    each_branch: bool = True  # also rank by each branch's score alone, beside the ensemble
    popularity_groups: int = 5  # Figure 4: group 0 = test items unseen in training, then groups of equal item count
    users_per_batch: int = 1024  # scores are computed in blocks of users x items: memory stays bounded
    items_per_batch: int = 16384
    device: Device = "auto"
    precision: Precision = "auto"  # as train.precision, as a whole-model bf16/fp16 copy; scores always fp32
    cpu_threads: int = 0  # 0: one per core
    item_features: FeatureStorage = "auto"  # as train.item_features

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be a non-empty list of positive cut-offs, e.g. [10, 20]")
        if min(self.popularity_groups, self.users_per_batch, self.items_per_batch) < 1:
            raise ValueError("popularity_groups, users_per_batch and items_per_batch must be positive")
