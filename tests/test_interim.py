import numpy as np
import pyarrow as pa

from pipeline.formats.interim import FileReport, first_occurrences


def test_first_occurrences_keep_file_order_and_count_repeats():
    rng = np.random.default_rng(0)
    rows = 2000
    # Key values up to 2**40: the product of distinct counts overflows int64, so codes are renumbered on the way.
    columns = {f"k{i}": rng.integers(0, 2**40, rows) // 2**36 for i in range(9)}
    columns["name"] = [None if x == 0 else f"u{x}" for x in rng.integers(0, 3, rows)]
    table = pa.table(columns)
    table = pa.concat_tables([table, table.slice(5, 300), table.slice(0, 10)])  # repeats, in two more chunks
    report = FileReport()
    kept = first_occurrences(table, list(columns), "repeated", report)
    expected = list(dict.fromkeys(tuple(row.values()) for row in table.to_pylist()))
    assert [tuple(row.values()) for row in kept.to_pylist()] == expected
    assert report.dropped["repeated"] == table.num_rows - len(expected) >= 310
