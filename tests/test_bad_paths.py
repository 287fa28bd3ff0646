"""Outputs a stage cannot write are refused before any work, and file-system failures read as one
sentence naming the path: an existing file or folder in the way, a read-only location, a full disk."""

import errno
import os
import shutil
from pathlib import Path

import pytest

from pipeline.artifacts import atomic_path
from pipeline.errors import InputError
from stages.cli import app
from tests.conftest import HM_MINI
from tests.test_capacity import Usage
from tests.test_cli import PARAMS, runner

TINY = ["-S", "model.hidden_size=16", "-S", "train.epochs=1"]
FIRST_WORK = {  # command -> the first call that reads or computes: it must not be reached
    "prepare": "stages.prepare.prepare_dataset",
    "extract": "pipeline.features.extract.load_encoder",
    "train": "pipeline.training.loop.train",
    "evaluate": "pipeline.evaluation.evaluate.evaluate",
    "report": "pipeline.reporting.report.report",
    "recommend": "pipeline.evaluation.recommend.recommend",
}


def inputs(command: str, data: tuple[Path, Path], run: Path = Path()) -> list[str]:
    """The command's real inputs (everything but --out), so only the output can be what stops it."""
    processed, features = data
    return {
        "prepare": ["--interim", str(processed.parent / "interim"), "--raw", str(HM_MINI), *PARAMS],
        "extract": ["--processed", str(processed), "--raw", str(HM_MINI), *PARAMS],
        "train": ["--processed", str(processed), "--features", str(features), *PARAMS, *TINY],
        "evaluate": ["--run", str(run), "--processed", str(processed), "--features", str(features), *PARAMS],
        "report": ["--runs", str(run.parent), "--metrics", str(run.parent)],
        "recommend": ["--run", str(run), "--processed", str(processed), "--features", str(features), *PARAMS],
    }[command]


def refuse_work(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    def work(*args, **kwargs):
        pytest.fail(f"{command} started before its output was checked")

    monkeypatch.setattr(FIRST_WORK[command], work)


def assert_refused(result, path: Path, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "Traceback" not in result.output
    assert all(word in result.output for word in words), result.output


@pytest.mark.parametrize("command", ["prepare", "extract", "train", "evaluate", "report"])
def test_out_naming_an_existing_file_is_refused_before_any_work(command, data, odmt_run, tmp_path, monkeypatch):
    out = tmp_path / "taken"
    out.write_text("keep me")
    refuse_work(monkeypatch, command)
    result = runner.invoke(app, [command, *inputs(command, data, odmt_run), "--out", str(out)])
    assert_refused(result, out, "is a file")
    assert out.read_text() == "keep me" and list(tmp_path.iterdir()) == [out]


def test_recommend_out_naming_an_existing_folder_is_refused_before_any_work(data, odmt_run, tmp_path, monkeypatch):
    out = tmp_path / "recommendations.parquet"
    out.mkdir()
    refuse_work(monkeypatch, "recommend")
    result = runner.invoke(app, ["recommend", *inputs("recommend", data, odmt_run), "--out", str(out)])
    assert_refused(result, out, "is a folder")
    assert list(out.iterdir()) == []


def test_out_below_a_file_is_refused_before_any_work(data, odmt_run, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "metrics"
    refuse_work(monkeypatch, "evaluate")
    result = runner.invoke(app, ["evaluate", *inputs("evaluate", data, odmt_run), "--out", str(out)])
    assert_refused(result, out, "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits; the next test simulates a lock")
def test_out_in_a_folder_without_write_permission_is_refused(data, odmt_run, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    refuse_work(monkeypatch, "evaluate")
    result = runner.invoke(app, ["evaluate", *inputs("evaluate", data, odmt_run), "--out", str(locked / "m")])
    assert_refused(result, locked / "m", "permission denied")


def test_out_on_a_read_only_file_system_is_refused_before_ranking(data, odmt_run, tmp_path, monkeypatch):
    locked = tmp_path / "read-only"
    locked.mkdir()
    for name in ("open", "mkdir"):  # what creating a folder or a file under `locked` calls: EROFS, as a ro mount says
        real = getattr(os, name)

        def read_only(path, *args, real=real, **kwargs):
            if Path(path).is_relative_to(locked):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, read_only)
    refuse_work(monkeypatch, "evaluate")
    out = locked / "metrics"
    result = runner.invoke(app, ["evaluate", *inputs("evaluate", data, odmt_run), "--out", str(out)])
    assert_refused(result, out, "read-only")
    assert list(locked.iterdir()) == []


def test_a_full_disk_during_a_write_names_the_file_and_leaves_nothing_behind(data, tmp_path, monkeypatch):
    def full_disk(table, where, **kwargs):
        Path(where).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pyarrow.parquet.write_table", full_disk)
    out = tmp_path / "processed"
    result = runner.invoke(app, ["prepare", *inputs("prepare", data), "--out", str(out)])
    assert_refused(result, out, "disk filled up after 1000 bytes")
    assert list(out.iterdir()) == []  # no half-written table, no temporary file


def test_an_escaping_full_disk_error_names_the_path_and_the_free_bytes(data, tmp_path, monkeypatch):
    out = tmp_path / "processed"

    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "stats.json"))

    monkeypatch.setattr("stages.prepare.prepare_dataset", full_disk)
    result = runner.invoke(app, ["prepare", *inputs("prepare", data), "--out", str(out)])
    assert_refused(result, out / "stats.json", "bytes free in", "write to another disk")


def test_a_writer_failing_on_a_full_disk_is_reported_as_one(tmp_path, monkeypatch):
    """torch's zip writer says `unexpected pos` on a full disk: the free space tells what happened."""
    path = tmp_path / "best.pt"
    monkeypatch.setattr("pipeline.artifacts.free_disk", lambda folder: (folder, 0))
    with pytest.raises(InputError, match=r"best\.pt: the disk filled up after 512 bytes"), atomic_path(path) as tmp:
        tmp.write_bytes(b"\0" * 512)
        raise RuntimeError("unexpected pos 1991744 vs 1991632")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr("pipeline.artifacts.free_disk", lambda folder: (folder, 2**40))
    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(path):  # with space left it is not the disk
        raise RuntimeError("unexpected pos 1991744 vs 1991632")


def test_evaluate_on_a_full_disk_is_refused_before_ranking(data, odmt_run, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(2**40, 2**40, 0))
    refuse_work(monkeypatch, "evaluate")
    out = tmp_path / "metrics"
    result = runner.invoke(app, ["evaluate", *inputs("evaluate", data, odmt_run), "--out", str(out)])
    assert_refused(result, out, "0 bytes free", "write to another disk")
    assert not out.exists()


def test_extract_on_a_disk_too_small_for_its_features_stops_before_encoding(data, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(2**40, 2**40 - 4096, 4096))
    monkeypatch.setattr("pipeline.features.extract.extract", lambda *args: pytest.fail("encoding started"))
    out = tmp_path / "features"
    result = runner.invoke(
        app,
        [
            "extract",
            *inputs("extract", data),
            "--out",
            str(out),
            "--modality",
            "text",
            "-S",
            f"extract.text.encoder={tiny_bert}",
            "-S",
            "extract.device=cpu",
        ],
    )
    assert_refused(result, out, "text features of", "4096 bytes free", "extract.text.max_tokens")
    assert not out.exists()
