"""The tuning set: a processed dataset without its test interactions, whose test split is the valid split
under the test's conditions.

Leave-one-out validates on an input that ends with a training item of the same user, but
tests on one that ends with the valid item, which the model never trained on (on
hm-sample it occurs nowhere in training for half the users). A recipe chosen on
validation is therefore chosen under easier conditions than test reads it. Dropping every
user's last interaction shifts the split by one: the tuning set's training part is each
user's training part but its last item, its valid target that item, and its test target
the original valid target, with the original training part as input. Choosing on the
tuning set's test reads the original validation only; the original test stays unread.

The catalogue is the original one (items that only occurred as a test target stay
candidates, as they are at validation), so the features folder of the original set
serves both: feature stores are bound to the items' ids, texts and photos, not counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.dataset.prepare import processed_stats
from pipeline.dataset.processed import SEQUENCES_FILE, has_split_columns, read_processed, train_counts, write_processed
from pipeline.errors import InputError


def write_tuning_set(processed: Path, out: Path) -> dict[str, Any]:
    """Write `out` (the processed contract) from `processed` minus every user's last interaction; return its stats."""
    if processed.resolve() == out.resolve():
        raise InputError(f"{out}: the tuning set would overwrite the processed set it is cut from. Pass another --out.")
    items, sequences = read_processed(processed)
    if has_split_columns(sequences):
        raise InputError(
            f"{processed / SEQUENCES_FILE}: its split is written out (prepare.split: temporal), and the tuning set shifts a "
            "leave-one-out split only. Choose on that set's valid split, or prepare with prepare.split=leave_one_out."
        )
    shortened = [items_of_user[:-1] for items_of_user in sequences["items"].to_pylist()]
    too_short = [user for user, kept in zip(sequences["user_id"].to_pylist(), shortened) if len(kept) < 3]
    if too_short:
        raise InputError(
            f"{processed / SEQUENCES_FILE}: user {too_short[0]!r} (and {len(too_short) - 1} more) would keep "
            "fewer than 3 interactions, too few for leave-one-out. Prepare with "
            "prepare.min_user_interactions >= 4."
        )
    train_count = train_counts(shortened, items.num_rows)[1:]
    items = items.set_column(items.schema.get_field_index("train_count"), "train_count", pa.array(train_count))
    sequences = sequences.set_column(
        sequences.schema.get_field_index("items"), "items", pa.array(shortened, sequences.schema.field("items").type)
    )
    return write_processed(out, items, sequences, processed_stats(items, sequences, {"tuning_set_of": str(processed)}))
