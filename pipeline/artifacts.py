"""Atomic writes: an artifact either exists whole or not at all; and outputs checked before a stage starts.

A stage that finds out at its last step that it cannot write (an existing file where its
folder goes, a read-only disk, a full one) has wasted its run: `check_output` finds out
first, and a file-system failure that still happens reads as one sentence a user can act on.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.capacity import free_disk
from pipeline.errors import InputError

FULL_DISK_BYTES = 2**20  # a write that fails with less than this free failed for want of space
FIXES: dict[int | None, str] = {  # errno -> what is wrong with the path, and what to do
    errno.EROFS: "its file system is read-only; write to another folder",
    errno.EACCES: "permission denied; change its permissions, or use another path",
    errno.EPERM: "permission denied; change its permissions, or use another path",
    errno.EISDIR: "is a folder where a file is expected; remove it, or use another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; remove that file, or use another path",
    errno.EEXIST: "exists and is not a folder; remove it, or use another path",
    errno.ENOENT: "does not exist; check the path",
}


def file_system_error(error: OSError, path: Path | None = None) -> InputError:
    """One sentence for a failed file-system call: the path (`path`, else the call's), what is wrong, the fix."""
    named = path or error.filename2 or error.filename  # os.replace names its destination second
    if named is None:
        return InputError(f"{error.strerror or error}; check the disk and the paths given.")
    if error.errno == errno.ENOSPC:
        folder, free = free_disk(Path(named))
        return InputError(
            f"{named}: no space is left on its disk ({free} bytes free in {folder}); free some space there, or write to another disk."
        )
    return InputError(f"{named}: {FIXES.get(error.errno, f'{error.strerror}; check the path and its disk')}.")


def check_output(path: Path, folder: bool) -> None:
    """InputError unless a stage can write `path`, a folder (or a file when not `folder`): call it before any work.

    Probes with a temporary file in the nearest existing folder, so a read-only or foreign
    location is refused with its reason (permission bits alone do not tell, e.g. for root),
    and nothing is left behind when the stage then stops for another reason.
    """
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file, and a folder is written there; remove it, or pass another --out.")
    if not folder and path.is_dir():
        raise InputError(f"{path}: is a folder, and a file is written there; remove it, or pass another --out.")
    where = path if folder else path.parent
    existing = next(parent for parent in (where, *where.parents) if parent.exists())
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is a file, not a folder; remove that file, or pass another --out.")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".odmt-probe-"):
            pass
    except OSError as error:
        raise file_system_error(error, path) from error


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    An interrupted stage therefore never leaves a half-written artifact behind. A block that
    fails on a full disk is reported as that, with the bytes written, whatever the writer
    raised (torch's zip writer says only `unexpected pos`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except InputError:
        raise
    except Exception as error:
        if getattr(error, "errno", None) != errno.ENOSPC and free_disk(path.parent)[1] >= FULL_DISK_BYTES:
            raise
        written = tmp.stat().st_size if tmp.exists() else 0
        raise InputError(
            f"{path}: the disk filled up after {written} bytes were written; free some space in {path.parent}, or write to another disk."
        ) from error
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_parquet(path: Path, table: pa.Table, row_group_size: int | None = None) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size)


def read_parquet(path: Path, schema: pa.Schema, produced_by: str, dictionary: Sequence[str] = ()) -> pa.Table:
    """Read a stage's table and check it against its contract.

    `produced_by` names the command that writes the file, so the error says how to fix it.
    The `dictionary` columns come dictionary-encoded (int32 codes and each distinct value
    once): 31.8M H&M interactions then hold 1.4M customer ids, not 2 GB of repeats.
    """
    if not path.is_file():
        raise InputError(f"{path}: missing. Run `{produced_by}` first.")
    table = pq.read_table(path, read_dictionary=list(dictionary) or None)
    schema = pa.schema([(f.name, pa.dictionary(pa.int32(), f.type) if f.name in dictionary else f.type) for f in schema])
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InputError(f"{path}: columns {missing} missing (has {table.column_names}). Re-create it with `{produced_by}`.")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise InputError(f"{path}: column types do not match {schema}: {error}. Re-create it with `{produced_by}`.") from error


def write_tsv(path: Path, rows: list[dict[str, Any]]) -> None:
    """A table of dict rows (floats to 6 decimals): train_log.tsv, popularity_groups.tsv; DVC plots read them."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in rows)


def read_tsv(path: Path, produced_by: str) -> list[dict[str, float]]:
    """A numeric table written by write_tsv (train_log.tsv, popularity_groups.tsv)."""
    if not path.is_file():
        raise InputError(f"{path}: missing. Run `{produced_by}` first.")
    with path.open(newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file, delimiter="\t")]
