"""`evaluate` in params.yaml: kept apart from the evaluator so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pipeline.errors import Count, Range, Seed, Workers, check_ranges
from pipeline.runtime import Device, FeatureStorage, Precision

POPULARITY_RANKING = "popularity"  # the popularity baseline's scorer name in metrics.json and ranks.parquet


@dataclass(frozen=True)
class EvaluateConfig:
    """The paper's protocol (section 4.2): full ranking, leave-one-out, Recall@k and NDCG@k."""

    ks: tuple[Count, ...] = (10, 20)
    exclude_history: bool = True  # the user's input items are not candidates (the paper's protocol)
    each_branch: bool = True  # also rank by each branch's score alone, beside the ensemble
    popularity_groups: Count = 5  # Figure 4: group 0 = test items unseen in training, then groups of equal item count
    users_per_batch: Count = 1024  # scores are computed in blocks of users x items: memory stays bounded
    items_per_batch: Count = 16384
    device: Device = "auto"
    precision: Precision = "auto"  # as train.precision, as a whole-model bf16/fp16 copy; scores always fp32
    cpu_threads: Workers = 0  # 0: one per core
    item_features: FeatureStorage = "auto"  # as train.item_features

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.ks:
            raise ValueError("ks is empty; list the cut-offs of Recall@k and NDCG@k, e.g. [10, 20]")


@dataclass(frozen=True)
class CaseStudyConfig:
    """`case_study` in params.yaml: the page of `odmt case-study`, a few test users' histories beside each scorer's top k.

    The users are drawn at random (not the best-served ones), so the page shows what the
    modalities do for a typical user; the seed makes the draw repeatable.
    """

    users: Count = 5  # test users on the page
    seed: Seed = 0  # of the draw of those users
    k: Count = 10  # items listed per scorer
    thumbnail_px: Annotated[int, Range(16, 1024)] = 96  # a thumbnail's longest side, in pixels
    jpeg_quality: Annotated[int, Range(1, 95, reason="Pillow's advice: above 95 only grows the file")] = 80

    def __post_init__(self) -> None:
        check_ranges(self)
