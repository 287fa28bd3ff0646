import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import InputError
from pipeline.features.images import Stretch, load_rgb, to_rgb
from tests.conftest import HM_MINI

REAL = sorted((HM_MINI / "images").rglob("*.jpg"))[0]


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("P", "png"), ("LA", "png"), ("RGBA", "png"), ("CMYK", "jpg"), ("I;16", "png"), ("L", "jpg"), ("1", "png")],
)
def test_every_mode_of_a_real_photo_becomes_rgb(tmp_path, mode, suffix):
    with Image.open(REAL) as photo:
        source = photo.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
        size = photo.size
    path = tmp_path / f"photo.{suffix}"
    source.save(path)
    image = load_rgb(path, "item")
    assert image.mode == "RGB" and image.size == size
    if mode == "I;16":  # 16-bit values scaled back to the 8-bit grey they came from
        with Image.open(REAL) as photo:
            grey = np.asarray(photo.convert("L"), dtype=np.int16)
        assert np.abs(np.asarray(image)[..., 0].astype(np.int16) - grey).max() <= 1


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (4, 4), (0, 128))
    assert to_rgb(half).getpixel((0, 0))[0] == pytest.approx(127, abs=1)


def test_stretch_resizes_without_cropping_and_normalises():
    pixels = Stretch(32, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(Image.new("RGB", (60, 90), (255, 0, 51)))
    assert pixels.shape == (3, 32, 32)
    assert torch.allclose(pixels[:, 0, 0], torch.tensor([2.0, -2.0, -1.2]), atol=1e-5)


def test_unreadable_and_bomb_images_name_item_and_file(tmp_path, monkeypatch):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(REAL.read_bytes()[:200])
    with pytest.raises(InputError, match=r"item 7: image .*broken.jpg cannot be read.*odmt prepare"):
        load_rgb(broken, "7")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the real photo is 360x540: over twice the limit
    with pytest.raises(InputError, match="decompression bomb"):
        load_rgb(REAL, "8")
