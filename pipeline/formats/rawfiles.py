"""What the readers of plain-text raw files share: picking the one file of a kind in the
raw folder, reading lines in batches, and the tab-separated `id<TAB>...` lines of the
ODMT authors' files, MicroLens' pairs TSV and RecBole's atomic files.

(The headed CSV files have their own streaming reader, csvfiles.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from pipeline.errors import InputError
from pipeline.formats.interim import FileReport, InteractionBatches

SEQUENCE_LINE = "`user<TAB>item item ...`"

Row = TypeVar("Row")


def only_one(folder: Path, found: list[str], several: str, none: str, setting: str) -> str:
    """The single name in `found`; else an InputError listing them, and naming the setting that picks one.

    The message reads "{folder}: {several} {found}. Set {setting}." or "{folder}: {none}. Set {setting}."
    """
    if len(found) != 1:
        what = f"{several} {found}" if found else none
        raise InputError(f"{folder}: {what}. Set {setting}.")
    return found[0]


def batched(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Lists of `size` consecutive rows (the last one shorter): itertools.batched, which Python 3.11 lacks."""
    while batch := list(islice(rows, size)):
        yield batch


def text_lines(path: Path, report: FileReport, skip_header: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break) of each line, counted as read.

    Bytes that are not UTF-8 are an InputError naming the line.
    """
    with path.open("rb") as file:
        if skip_header:
            file.readline()
        for number, line in enumerate(file, start=2 if skip_header else 1):
            report.records_read += 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InputError(f"{path}, line {number}: bytes that are not UTF-8 ({error}). Re-encode the file as UTF-8.") from error
            yield number, text.rstrip("\r\n")


def keyed_lines(path: Path, line_format: str, report: FileReport) -> Iterator[tuple[str, str]]:
    """(id, rest) of each line of a headerless file of `line_format` lines, split at the first tab.

    Lines without a tab or an id are counted drops; a file without any other is an InputError.
    """
    usable = 0
    for _, line in text_lines(path, report):
        key, tab, rest = line.partition("\t")
        if not tab:
            report.dropped["no_tab"] += 1
        elif not key.strip():
            report.dropped["missing_id"] += 1
        else:
            usable += 1
            yield key.strip(), rest
    if not usable:
        raise InputError(
            f"{path}: none of its {report.records_read} lines is `id<TAB>...`. Expected {line_format} per line, without a header."
        )


def read_sequences(path: Path, batch_lines: int, report: FileReport) -> pa.Table:
    """One interaction per item of every `user<TAB>item item ...` line (oldest first), in file order.

    Such files have no times: each interaction's timestamp is its position in the file,
    so every user's items keep their order even when split over several lines. A line
    without items is a counted drop.
    """
    batches = InteractionBatches()
    for batch in batched(keyed_lines(path, SEQUENCE_LINE, report), batch_lines):
        sequences = [(user, rest.split()) for user, rest in batch]
        report.dropped["no_items"] += sum(not sequence for _, sequence in sequences)
        user_ids = [user for user, sequence in sequences for _ in sequence]
        item_ids = [item for _, sequence in sequences for item in sequence]
        batches.add(pa.array(user_ids, pa.string()), pa.array(item_ids, pa.string()), batches.positions(len(user_ids)))
    report.records_kept = report.records_read - report.dropped.total()
    if not batches.count:
        raise InputError(f"{path}: no line holds an item. Expected {SEQUENCE_LINE} per line.")
    report.notes["interactions"] = batches.count
    return batches.decode(batches.coded())
