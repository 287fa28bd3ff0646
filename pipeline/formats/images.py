"""Is an item's photo usable? Checked once in prepare so later stages never meet a bad file.

An interim `image_path` is a file relative to the raw root, or `lmdb:<environment>#<key>`
for an image stored in an LMDB environment under the raw root (the ODMT authors' format:
`<environment>` relative to the raw root, the key everything after the first `#`).
`resolve_inside` turns either into an image source and `open_image` opens both, for
prepare's check and for feature extraction alike.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from pipeline.errors import InputError

OUTSIDE_RAW = "image_outside_raw_folder"
MISSING = "image_file_missing"
UNREADABLE = "image_unreadable"

LMDB_SCHEME = "lmdb:"
ENCODED_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG and PNG files stored as values


@dataclass(frozen=True)
class LmdbImage:
    """The image stored under `key` in the LMDB environment at `environment`."""

    environment: Path
    key: str

    def __str__(self) -> str:
        return f"{self.environment}, key {self.key!r}"

    def read(self) -> bytes | None:
        """The stored value, None when the key is absent."""
        with lmdb_environment(self.environment).begin() as transaction:
            return transaction.get(self.key.encode("utf-8"))


ImageSource = Path | LmdbImage


def lmdb_image_path(environment: str, key: str) -> str:
    """The interim image_path of an image stored under `key` in `environment` (relative to the raw root)."""
    return f"{LMDB_SCHEME}{environment}#{key}"


def resolve_inside(raw: Path, image_path: str) -> ImageSource | None:
    """Where an interim `image_path` points under `raw`, or None when it leaves the raw folder."""
    if image_path.startswith(LMDB_SCHEME):
        environment, _, key = image_path.removeprefix(LMDB_SCHEME).partition("#")
        path = path_inside(raw, environment)
        return None if path is None else LmdbImage(path, key)
    return path_inside(raw, image_path)


def path_inside(raw: Path, relative: str) -> Path | None:
    """`raw / relative`, or None when the path leaves the raw folder (absolute, or through `..`).

    The check is on the path as written, so a raw folder that links its images elsewhere works.
    """
    normal = os.path.normpath(relative)
    if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        return None
    return raw / normal


def image_problem(source: ImageSource, decode: bool = True) -> str | None:
    """None for an image PIL can fully decode, else the drop reason.

    `verify()` alone misses a truncated JPEG, so the image is also decoded (`load()`);
    a decompression bomb is refused by PIL's own pixel limit. A missing or broken LMDB
    environment raises InputError rather than dropping every item stored in it.
    """
    exists = source.is_file() if isinstance(source, Path) else source.read() is not None
    if not exists:
        return MISSING
    if not decode:
        return None
    try:
        with open_image(source) as image:
            image.verify()
        with open_image(source) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return UNREADABLE
    return None


def open_image(source: ImageSource) -> Image.Image:
    """The image of `source`, to be `load()`ed inside `with` (a file is decoded lazily).

    Raises FileNotFoundError for a missing file or key, and OSError or ValueError
    (InputError) for bytes that are no image.
    """
    if isinstance(source, Path):
        return Image.open(source)
    value = source.read()
    if value is None:
        raise FileNotFoundError(f"{source}: no such key")
    if value.startswith(ENCODED_IMAGE_MAGIC):
        return Image.open(io.BytesIO(value))
    try:
        record = StoredImageUnpickler(io.BytesIO(value)).load()
        height, width = record.size
        pixels = np.frombuffer(record.image, np.uint8).reshape(height, width, record.channels)
        return Image.fromarray(pixels)
    except Exception as error:  # whatever the untrusted bytes make the unpickler or numpy raise
        raise InputError(
            f"{source}: neither a JPEG/PNG nor an LMDB_Image record of uint8 pixels ({error}). "
            "Rebuild the LMDB with the ODMT authors' script, or store encoded image files as values."
        ) from error


class StoredImage:
    """The data attributes of the ODMT authors' pickled `LMDB_Image`, without any of its code."""

    channels: int
    size: tuple[int, int]  # (height, width)
    image: bytes  # uint8 pixels, height x width x channels, row-major
    id: str


class StoredImageUnpickler(pickle.Unpickler):
    """Loads `LMDB_Image` records and nothing else: a pickle can otherwise run any code it names."""

    def find_class(self, module: str, name: str) -> type:
        if name == "LMDB_Image":  # pickled from the authors' script, usually as __main__.LMDB_Image
            return StoredImage
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only LMDB_Image records are accepted")


_environments: dict[Path, tuple[int, lmdb.Environment]] = {}
_environments_lock = threading.Lock()


def lmdb_environment(path: Path) -> lmdb.Environment:
    """The environment at `path`, opened read-only once per process and shared by its threads.

    An environment must not cross a fork (DataLoader workers): a child closes the copy
    it inherited and opens its own, since LMDB refuses a second open in one process.
    """
    with _environments_lock:
        opened_by, environment = _environments.get(path, (None, None))
        if opened_by != os.getpid():
            if environment is not None:
                environment.close()
            if not path.exists():
                raise InputError(f"{path}: LMDB environment not found. Restore it, or re-run `odmt ingest`.")
            try:
                environment = lmdb.open(str(path), subdir=path.is_dir(), readonly=True, lock=False)
            except lmdb.Error as error:
                raise InputError(f"{path}: cannot be opened as an LMDB environment ({error}).") from error
            _environments[path] = (os.getpid(), environment)
        return _environments[path][1]
