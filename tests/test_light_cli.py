"""`odmt --help`, `odmt ingest` and `odmt prepare` start without torch, transformers or h5py: a module-level import of
them in any stage module (stages/cli.py imports them all) costs every command seconds before it does anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HM_MINI, REPO

HEAVY = {"torch", "transformers", "h5py"}
PARAMS = ["--params", str(REPO / "params.yaml")]


def heavy_imports(*args: str) -> set[str]:
    """The heavy packages `odmt <args>` imports, read from `python -X importtime` in a fresh interpreter."""
    child = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stages.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    lines = [line for line in child.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "python -X importtime wrote no import lines"
    return HEAVY & {line.rpartition("|")[2].strip().split(".")[0] for line in lines}


@pytest.mark.parametrize("args", [["--help"], ["ingest", "hm", "--help"], ["prepare", "--help"]], ids=" ".join)
def test_help_imports_no_heavy_package(args):
    assert heavy_imports(*args) == set()


def test_ingest_then_prepare_import_no_heavy_package(tmp_path: Path):
    interim, processed = tmp_path / "interim", tmp_path / "processed"

    assert heavy_imports("ingest", "hm", "--raw", str(HM_MINI), "--out", str(interim), *PARAMS) == set()
    assert heavy_imports("prepare", "--interim", str(interim), "--raw", str(HM_MINI), "--out", str(processed), *PARAMS) == set()
    assert (processed / "sequences.parquet").is_file()


def test_a_command_that_writes_features_is_seen_importing_them(tmp_path: Path):
    """The check above can fail: `odmt sample synthetic` writes feature shards, so its import of h5py and torch shows."""
    args = ["--users", "4", "--items", "12", "--length", "4", "--genres", "2"]

    assert heavy_imports("sample", "synthetic", "--out", str(tmp_path / "synthetic"), *args) >= {"torch", "h5py"}
