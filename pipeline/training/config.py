"""`train` in params.yaml: kept apart from the loop so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pipeline.errors import Count, Positive, Range, Seed, Workers, check_ranges
from pipeline.runtime import Device, FeatureStorage, Precision

Loss = Literal["in_batch", "full_softmax"]  # train.loss: the paper's debiased in-batch softmax, or every item
Instances = Literal["positions", "prefixes"]  # train.instances: one row per user, or one per prefix (RecBole's)
Decay = Literal["none", "linear", "cosine"]  # train.lr_decay: after warm-up, towards 0 at the end of train.epochs


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation (the authors' values as defaults) and model selection on validation."""

    epochs: Count = 30
    batch_size: Count = 128  # sequences per step and process
    learning_rate: Positive = 1e-4
    weight_decay: Annotated[float, Range(0)] = 0.1  # AdamW, on all parameters
    gradient_clip: Positive = 5.0  # the gradients' total norm is clipped to this
    warmup_steps: Annotated[int, Range(0)] = 0  # linear warm-up of the learning rate over this many optimiser steps
    lr_decay: Decay = "none"
    patience: Count = 5  # epochs without a better valid Recall@k before stopping
    selection_k: Count = 10  # best.safetensors = best valid Recall@selection_k
    seed: Seed = 0
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA and on CPUs with native bf16 (AMX), else fp32
    cpu_threads: Workers = 0  # 0: one per core
    item_features: FeatureStorage = "auto"  # shards (read per batch) | memory (loaded onto the device) | auto (memory on CUDA)
    eval_users_per_batch: Count = 1024  # full-ranking validation in blocks of users x items (bounded memory)
    eval_items_per_batch: Count = 16384
    global_negatives: bool = False  # under torchrun: every rank scores against all ranks' in-batch targets
    loss: Loss = "in_batch"  # the paper's in-batch softmax (eq. 5-6), or every item a candidate (RecBole's CE)
    popularity_correction: bool = True  # in_batch only: the -log pop(j) of eq. 6
    instances: Instances = "positions"  # every position of a user's sequence a target, or each prefix its own row
    divergence_epochs: Count = 3  # the CE loss rising this many epochs in a row flags the run "diverged"

    def __post_init__(self) -> None:
        check_ranges(self)
