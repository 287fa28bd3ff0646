"""The processed set exported as another toolkit's files, so its models run on the very same data and split.

<name>.inter   RecBole atomic file: one interaction per item of every sequence, in sequence order
<name>.item    RecBole atomic file: each item's text as a token_seq
"""

from __future__ import annotations

from pathlib import Path

from pipeline.artifacts import atomic_path
from pipeline.dataset.processed import SEQUENCES_FILE, has_split_columns, read_processed
from pipeline.errors import InputError
from pipeline.formats.recbole import INTER_SUFFIX, ITEM_SUFFIX

# What export_recbole writes: RecBole's default field names.
RECBOLE_INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
RECBOLE_ITEM_HEADER = "item_id:token\ttext:token_seq\n"
USERS_PER_BATCH = 10_000  # sequences turned into Python lists at a time


def export_recbole(processed: Path, out: Path, name: str) -> dict[str, int]:
    """Write processed/ as `out/<name>.inter` and `out/<name>.item`; return what was written.

    The same users, items and order as the ODMT runs: one `.inter` row per item of every
    sequence, its timestamp the item's position in the sequence (0 = oldest), and a
    `.item` row per item holding its text as a token_seq.

    To evaluate on our split, give RecBole `data_path` = the parent of `out`, `dataset` =
    `name`, `load_col: {inter: [user_id, item_id, timestamp], item: [item_id, text]}` and
    `eval_args: {split: {LS: valid_and_test}, order: TO, mode: full}`, with its
    interaction-count filters and duplicate removal left off and `MAX_ITEM_LIST_LENGTH`
    at least prepare.max_sequence_length. Ordering each user's rows by these timestamps
    (TO), testing on the last and validating on the one before (LS valid_and_test) is
    then exactly our leave_one_out.
    """
    items, sequences = read_processed(processed)
    if has_split_columns(sequences):
        raise InputError(
            f"{processed / SEQUENCES_FILE}: its split is written out (prepare.split: temporal), which RecBole's leave-one-out "
            "(LS valid_and_test) does not reproduce. Export a set prepared with prepare.split=leave_one_out."
        )
    item_ids = {idx: recbole_token(item, processed) for idx, item in zip(items["item_idx"].to_pylist(), items["item_id"].to_pylist())}
    interactions = 0
    with atomic_path(out / f"{name}{INTER_SUFFIX}") as tmp, tmp.open("w", encoding="utf-8", newline="\n") as file:
        file.write(RECBOLE_INTER_HEADER)
        for batch in sequences.to_batches(max_chunksize=USERS_PER_BATCH):
            for user, sequence in zip(batch["user_id"].to_pylist(), batch["items"].to_pylist()):
                user = recbole_token(user, processed)
                file.writelines(f"{user}\t{item_ids[idx]}\t{position}\n" for position, idx in enumerate(sequence))
                interactions += len(sequence)
    with atomic_path(out / f"{name}{ITEM_SUFFIX}") as tmp, tmp.open("w", encoding="utf-8", newline="\n") as file:
        file.write(RECBOLE_ITEM_HEADER)
        file.writelines(
            f"{item_ids[idx]}\t{recbole_token_seq(text)}\n" for idx, text in zip(items["item_idx"].to_pylist(), items["text"].to_pylist())
        )
    return {"users": sequences.num_rows, "items": items.num_rows, "interactions": interactions}


def recbole_token(value: str, processed: Path) -> str:
    """`value` as a token field, refusing what a tab-separated line (or pandas' quoting) would change."""
    if "\t" in value or "\n" in value or "\r" in value or value.startswith('"'):
        raise InputError(
            f"{processed}: id {value!r} holds a tab or line break or starts with a double quote, which a RecBole "
            "atomic file cannot carry. Change such ids in the raw data and re-run ingest and prepare."
        )
    return value


def recbole_token_seq(text: str | None) -> str:
    """`text` as a token_seq field whose space-separated tokens are its words.

    Whitespace runs (tabs and line breaks included) become one space, so splitting at
    spaces gives the words back. A text opening with a double quote gets a leading space,
    which RecBole's split drops and our reader trims, for pandas not to take it as quoting.
    """
    words = " ".join((text or "").split())
    return f" {words}" if words.startswith('"') else words
