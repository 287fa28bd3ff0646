"""Streaming reader for the headed CSV files of raw dumps (H&M, MicroLens, ...).

Memory stays bounded by one block plus what the caller keeps: the 31.8-million-row H&M
transactions file is never loaded whole. Bad input becomes an InputError naming the
file and line, or a counted drop; never a bare pyarrow traceback.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.errors import InputError
from pipeline.formats.interim import FileReport

log = logging.getLogger(__name__)

MALFORMED = "malformed_row"


def stream_csv(
    path: Path,
    columns: Sequence[str],
    report: FileReport,
    block_size: int = 1 << 24,
    delimiter: str = ",",
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of `columns` (all strings, nulls for empty fields) in file order.

    Quoted fields may hold delimiters and newlines. A row with the wrong number of
    fields is skipped and counted in `report` as a malformed row.
    """
    header = read_header(path, delimiter)
    missing = [name for name in columns if name not in header]
    if missing:
        raise InputError(f"{path}, line 1: missing column(s) {missing}; the header has {header}.")

    def on_malformed(row: pacsv.InvalidRow) -> str:
        report.records_read += 1
        report.dropped[MALFORMED] += 1
        if report.dropped[MALFORMED] <= 3:
            log.warning("%s: skipped a row with %d fields (expected %d): %.120r", path, row.actual_columns, row.expected_columns, row.text)
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_malformed),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns),
                column_types={name: pa.string() for name in columns},
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            report.records_read += batch.num_rows
            yield batch
    except pa.ArrowInvalid as error:
        if "UTF8" in str(error):
            line = first_non_utf8_line(path)
            raise InputError(
                f"{path}, line {line}: bytes that are not UTF-8. Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
            ) from error
        raise InputError(f"{path}: cannot be parsed as CSV: {error}") from error
    if report.records_read == 0:
        raise InputError(f"{path}: has a header but no records. Is it the complete file?")


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    """The column names of line 1, or an InputError saying why there are none."""
    if not path.is_file():
        raise InputError(f"{path}: file not found.")
    with path.open("rb") as file:
        first = file.readline()
    if not first.strip():
        raise InputError(f"{path}: empty file, expected a header line.")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}, line 1: header is not UTF-8. Re-encode the file as UTF-8.") from error
    return next(csv.reader([text], delimiter=delimiter))


def first_non_utf8_line(path: Path) -> int:
    """1-based number of the first line holding invalid UTF-8 (slow; only run on error)."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0
