import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from pipeline.artifacts import write_parquet
from pipeline.dataset.export import export_recbole
from pipeline.dataset.prepare import PrepareConfig, prepare
from pipeline.dataset.processed import ITEMS, SEQUENCES, leave_one_out
from pipeline.errors import InputError
from pipeline.formats.recbole import RecBoleConfig, ingest_recbole
from stages import export
from tests.sources import recbole as fixture


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """The RecBole fixture ingested and prepared: what gets exported."""
    root = tmp_path_factory.mktemp("recbole")
    fixture.write_raw(root / "raw")
    ingest_recbole(root / "raw", root / "interim", RecBoleConfig())
    prepare(root / "interim", root / "raw", root / "processed", PrepareConfig())
    return root / "processed"


def processed_rows(folder):
    items = pq.read_table(folder / "items.parquet").to_pylist()
    sequences = pq.read_table(folder / "sequences.parquet").to_pylist()
    item_id = {row["item_idx"]: row["item_id"] for row in items}
    return {row["item_id"]: row["text"] for row in items}, {row["user_id"]: [item_id[idx] for idx in row["items"]] for row in sequences}


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def write_processed(folder, texts, sequences):
    """A processed folder by hand: texts item_id -> text, sequences user_id -> item ids."""
    idx = {item: i for i, item in enumerate(texts, start=1)}
    n = len(texts)
    items = pa.table([list(idx.values()), list(texts), list(texts.values()), [None] * n, [0] * n], schema=ITEMS)
    sequences = pa.table(
        [list(range(len(sequences))), list(sequences), [[idx[i] for i in seq] for seq in sequences.values()]], schema=SEQUENCES
    )
    write_parquet(folder / "items.parquet", items)
    write_parquet(folder / "sequences.parquet", sequences)
    return folder


def test_round_trip_keeps_users_items_order_and_text(processed, tmp_path):
    counts = export_recbole(processed, tmp_path / "ml-mini", "ml-mini")
    texts, sequences = processed_rows(processed)
    assert counts == {"users": 8, "items": 14, "interactions": 56}
    inter = lines(tmp_path / "ml-mini" / "ml-mini.inter")
    assert inter[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert len(inter) - 1 == sum(map(len, sequences.values()))
    assert lines(tmp_path / "ml-mini" / "ml-mini.item")[0] == "item_id:token\ttext:token_seq"

    report = ingest_recbole(tmp_path / "ml-mini", tmp_path / "interim", RecBoleConfig())
    interactions = pq.read_table(tmp_path / "interim" / "interactions.parquet").to_pylist()
    read_back = {user: [(r["item_id"], r["timestamp"]) for r in interactions if r["user_id"] == user] for user in sequences}
    assert read_back == {user: [(item, t) for t, item in enumerate(sequence)] for user, sequence in sequences.items()}
    items = pq.read_table(tmp_path / "interim" / "items.parquet").to_pylist()
    assert {row["item_id"]: row["text"] for row in items} == texts
    assert texts["4"].startswith('"Great Performances"')
    assert report["files"]["ml-mini.item"]["records_read"] == len(texts)


def test_recbole_leave_one_out_by_time_is_our_split(processed, tmp_path):
    export_recbole(processed, tmp_path, "ml-mini")
    _, sequences = processed_rows(processed)
    rows = {}
    for user, item, time in list(csv.reader((tmp_path / "ml-mini.inter").open(), delimiter="\t"))[1:]:
        rows.setdefault(user, []).append((float(time), item))
    for user, sequence in sequences.items():
        by_time = [item for _, item in sorted(rows[user])]  # order: TO
        ours = leave_one_out(sequence)
        assert (by_time[:-2], by_time[-2], by_time[-1]) == (list(ours.train), ours.valid, ours.test)  # LS: valid_and_test


def test_texts_survive_tabs_line_breaks_and_quotes(tmp_path):
    texts = {"a": "Silk scarf\tundyed,\n180  cm ", "b": '"Quoted" start', "c": 'A 12" single'}
    folder = write_processed(tmp_path / "processed", texts, {"u1": ["a", "b", "c", "a"]})
    export_recbole(folder, tmp_path / "out", "x")
    item_lines = lines(tmp_path / "out" / "x.item")
    assert len(item_lines) == 4 and all(line.count("\t") == 1 for line in item_lines)
    # pandas, which RecBole reads with, quotes like the csv module; RecBole then splits token_seq at spaces.
    with (tmp_path / "out" / "x.item").open(newline="") as file:
        tokens = {item: [t for t in text.split(" ") if t] for item, text in list(csv.reader(file, delimiter="\t"))[1:]}
    assert tokens == {item: text.split() for item, text in texts.items()}

    ingest_recbole(tmp_path / "out", tmp_path / "interim", RecBoleConfig())
    items = pq.read_table(tmp_path / "interim" / "items.parquet").to_pylist()
    assert {row["item_id"]: row["text"] for row in items} == {item: " ".join(text.split()) for item, text in texts.items()}


@pytest.mark.parametrize("item", ["a\tb", "line\nbreak", '"quoted"'])
def test_ids_a_line_cannot_carry_are_refused(tmp_path, item):
    folder = write_processed(tmp_path / "processed", {item: "text", "b": "text"}, {"u1": [item, "b", item]})
    with pytest.raises(InputError, match="cannot carry"):
        export_recbole(folder, tmp_path / "out", "x")
    assert not (tmp_path / "out" / "x.inter").exists()


def test_command_names_the_files_after_the_out_folder(processed, tmp_path):
    odmt = typer.Typer()
    odmt.add_typer(export.app, name="export")
    out = tmp_path / "recbole" / "hm-like"
    result = CliRunner().invoke(odmt, ["export", "recbole", "--processed", str(processed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "hm-like.inter").is_file() and (out / "hm-like.item").is_file()
    assert "interactions" in result.output and "56" in result.output
    result = CliRunner().invoke(odmt, ["export", "recbole", "--processed", str(tmp_path / "none"), "--out", str(out)])
    assert result.exit_code == 2 and "odmt prepare" in result.output
