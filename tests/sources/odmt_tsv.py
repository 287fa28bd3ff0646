"""A small raw folder in the ODMT authors' processed format, written the way their data script writes it.

Arts_user_behaviours.tsv, Arts_text.tsv and Arts_image.lmdb (a single-file LMDB, as
their builder makes it, with the `__keys__` and `__len__` entries), holding:
- 8 users of 7 items each over 14 items (A01..A14), every one with text and an image;
- awkward cases: a user with one item (u9), an item without a text line (X_NOTEXT, in
  u1), an item with text but no image (X_NOIMAGE, in u2), an item whose stored pixels
  are cut short (X_BROKEN, in u3), a text line that lost its tab, a text holding a tab,
  and an image stored as PNG bytes instead of a pickled record (A14).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

TAG = "Arts"
BEHAVIOURS = f"{TAG}_user_behaviours.tsv"
TEXT = f"{TAG}_text.tsv"
IMAGES = f"{TAG}_image.lmdb"

ITEMS = [f"A{i:02d}" for i in range(1, 15)]
SEQUENCES = {f"u{u}": [ITEMS[(3 * u + 2 * k) % len(ITEMS)] for k in range(7)] for u in range(1, 9)}
SEQUENCES["u1"].insert(2, "X_NOTEXT")
SEQUENCES["u2"].insert(4, "X_NOIMAGE")
SEQUENCES["u3"].append("X_BROKEN")
SEQUENCES["u9"] = ["A03"]

TEXTS = {item: f"Acrylic paint set no. {i}, {i * 6} colours" for i, item in enumerate(ITEMS, start=1)}
TEXTS["A05"] = "Silk scarf\tundyed, 180 cm"
TEXTS |= {"X_NOIMAGE": "Sketchbook without a picture", "X_BROKEN": "Easel whose picture is cut short"}
LINE_WITHOUT_TAB = "A99 this line lost its tab"
PNG_ITEM = "A14"


class LMDB_Image:  # noqa: N801 - the authors' class name, which their pickles record
    """The authors' record of one picture: an RGB array's shape and raw bytes."""

    def __init__(self, image: np.ndarray, id: str) -> None:
        self.channels = image.shape[2]
        self.size = image.shape[:2]
        self.image = image.tobytes()
        self.id = id


def pixels(item: str) -> np.ndarray:
    """A 24x32 (height x width) RGB ramp that differs per item."""
    seed = sum(item.encode())
    y, x = np.mgrid[0:24, 0:32]
    channels = [(x * 8 + seed) % 256, (y * 10 + 3 * seed) % 256, np.full_like(x, 7 * seed % 256)]
    return np.stack(channels, axis=2).astype(np.uint8)


def stored_values() -> dict[str, bytes]:
    """LMDB value per item: pickled records, PNG bytes for PNG_ITEM, pixels cut short for X_BROKEN."""
    values = {item: pickle.dumps(LMDB_Image(pixels(item), item)) for item in [*ITEMS, "X_NOTEXT"]}
    png = io.BytesIO()
    Image.fromarray(pixels(PNG_ITEM)).save(png, format="PNG")
    values[PNG_ITEM] = png.getvalue()
    broken = LMDB_Image(pixels("X_BROKEN"), "X_BROKEN")
    broken.image = broken.image[:100]
    values["X_BROKEN"] = pickle.dumps(broken)
    return values


def write_lmdb(path: Path, values: dict[str, bytes], subdir: bool = False) -> None:
    """Items under their ASCII ids, then the builder's `__keys__` and `__len__` bookkeeping."""
    environment = lmdb.open(str(path), subdir=subdir, map_size=1 << 24, meminit=False, map_async=True)
    with environment.begin(write=True) as transaction:
        for item, value in values.items():
            transaction.put(item.encode("ascii"), value)
        keys = [item.encode("ascii") for item in values]
        transaction.put(b"__keys__", pickle.dumps(keys))
        transaction.put(b"__len__", pickle.dumps(len(keys)))
    environment.close()


def write_raw(folder: Path, lmdb_subdir: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    behaviours = "".join(f"{user}\t{' '.join(items)}\n" for user, items in SEQUENCES.items())
    (folder / BEHAVIOURS).write_text(behaviours, encoding="utf-8")
    lines = [f"{item}\t{text}\n" for item, text in TEXTS.items()]
    lines.insert(3, LINE_WITHOUT_TAB + "\n")
    (folder / TEXT).write_text("".join(lines), encoding="utf-8")
    write_lmdb(folder / IMAGES, stored_values(), lmdb_subdir)
    return folder
