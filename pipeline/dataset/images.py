"""Is an item's photo usable? Checked once in prepare so later stages never meet a bad file."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

OUTSIDE_RAW = "image_outside_raw_folder"
MISSING = "image_file_missing"
UNREADABLE = "image_unreadable"


def resolve_inside(raw: Path, relative: str) -> Path | None:
    """`raw / relative`, or None when the path leaves the raw folder (absolute, or through `..`).

    The check is on the path as written, so a raw folder that links its images elsewhere works.
    """
    normal = os.path.normpath(relative)
    if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        return None
    return raw / normal


def image_problem(path: Path, decode: bool = True) -> str | None:
    """None for a file PIL can fully decode, else the drop reason.

    `verify()` alone misses a truncated JPEG, so the image is also decoded (`load()`);
    a decompression bomb is refused by PIL's own pixel limit.
    """
    if not path.is_file():
        return MISSING
    if not decode:
        return None
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return UNREADABLE
    return None
