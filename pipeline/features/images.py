"""Item photos -> normalised pixel tensors, in DataLoader workers beside the forward pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from pipeline.errors import InputError
from pipeline.formats.images import ImageSource, open_image

WHITE = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every PIL mode: transparency over white, 16/32-bit scaled to 8-bit, CMYK converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(source: ImageSource, item: str) -> Image.Image:
    """Open one item's photo (a file or an LMDB entry); PIL's pixel limit refuses decompression bombs."""
    try:
        with open_image(source) as image:
            image.load()
            return to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(
            f"item {item}: image {source} cannot be read ({error}). `odmt prepare` drops unreadable photos: "
            "was the file changed after prepare? Re-run prepare, then extract."
        ) from error


class Stretch:
    """The authors' preprocessing: resize to size x size (stretched, not cropped), then normalise.

    A class rather than a closure so DataLoader workers can receive it under any start method.
    """

    def __init__(self, size: int, mean: list[float], std: list[float]) -> None:
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        resized = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, H, W)
        return (pixels - self.mean) / self.std


class WithProcessor:
    """The encoder's own image processor (for DINOv2: resize shortest edge, centre crop, normalise)."""

    def __init__(self, processor: Callable[..., dict[str, torch.Tensor]]) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


class ItemImages(torch.utils.data.Dataset):
    """(item_idx, pixels) for a list of items, decoded in the worker that asks for them."""

    def __init__(self, item_idx: list[int], sources: list[ImageSource], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.item_idx, self.sources, self.preprocess = item_idx, sources, preprocess

    def __len__(self) -> int:
        return len(self.item_idx)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        return self.item_idx[i], self.preprocess(load_rgb(self.sources[i], str(self.item_idx[i])))
