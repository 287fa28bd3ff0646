"""Every raw source's fixture, in its real layout, through ingest -> prepare -> extract -> train -> evaluate."""

import importlib
import json

import pytest
from typer.testing import CliRunner

from stages.cli import app
from tests.conftest import REPO

pytestmark = pytest.mark.slow
SOURCES = {"amazon": "amazon", "microlens": "microlens", "recbole": "recbole", "odmt-tsv": "odmt_tsv"}


@pytest.mark.parametrize("source", SOURCES)
def test_source_runs_through_the_whole_pipeline(tmp_path, source):
    raw = tmp_path / "raw"
    importlib.import_module(f"tests.sources.{SOURCES[source]}").write_raw(raw)
    folder = {name: str(tmp_path / name) for name in ("interim", "processed", "features", "run", "metrics")}
    small = ["--params", str(REPO / "params.yaml"), "-S", "model.hidden_size=32", "-S", "train.epochs=2", "-S", "evaluate.ks=[5, 10]"]
    commands = [
        ["ingest", source, "--raw", str(raw), "--out", folder["interim"]],
        ["prepare", "--interim", folder["interim"], "--raw", str(raw), "--out", folder["processed"]],
        ["extract", "--processed", folder["processed"], "--raw", str(raw), "--out", folder["features"]],
        ["train", "--processed", folder["processed"], "--features", folder["features"], "--out", folder["run"]],
        [
            "evaluate",
            "--run",
            folder["run"],
            "--processed",
            folder["processed"],
            "--features",
            folder["features"],
            "--out",
            folder["metrics"],
        ],
    ]
    for command in commands:
        result = CliRunner().invoke(app, [*command, *small])
        assert result.exit_code == 0, f"{command[:2]}: {result.output}"

    stats = json.loads((tmp_path / "processed" / "stats.json").read_text())
    assert stats["users"] >= 8 and stats["items"] >= 12  # the fixture's users and items survive the paper's filters
    metrics = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert metrics["users"] == stats["users"] and metrics["items"] == stats["items"]
    assert 0.0 <= metrics["ensemble"]["test"]["recall@10"] <= 1.0
