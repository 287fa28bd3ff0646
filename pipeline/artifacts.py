"""Atomic writes: an artifact either exists whole or not at all."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InputError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    An interrupted stage therefore never leaves a half-written artifact behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
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
        raise InputError(
            f"{path}: columns {missing} missing (has {table.column_names}). "
            f"Re-create it with `{produced_by}`."
        )
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise InputError(
            f"{path}: column types do not match {schema}: {error}. Re-create it with `{produced_by}`."
        ) from error


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
