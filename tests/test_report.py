import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from pipeline.artifacts import write_json, write_tsv
from pipeline.errors import InputError
from pipeline.evaluation.report import ablation_name, markdown_table, report
from stages.report import report as report_command

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def write_run(data: Path, name: str, recall: float, model: dict | None = None, branches: bool = True) -> None:
    """A fake run and metrics folder in the real formats: what `odmt train` and `odmt evaluate` write."""
    split = {key: recall / (2 if key.startswith("ndcg") else 1) + (0.05 if key.endswith("20") else 0) for key in KEYS}
    shares = {"image": 0.5, "text": 0.4, "id": 0.6} if branches else {}
    scorers = {"ensemble": split} | {branch: {k: v * share for k, v in split.items()} for branch, share in shares.items()}
    write_json(data / "metrics" / name / "metrics.json",
               {"epoch": 2, "users": 90, "items": 40} | {s: {"valid": v, "test": v} for s, v in scorers.items()})
    write_tsv(data / "metrics" / name / "popularity_groups.tsv", [
        {"group": g, "items": 8, "users": 18, "min_train_count": g, "max_train_count": g + 1,
         "recall@10": recall * g / 5, "ndcg@10": 0.0, "recall@20": 0.0, "ndcg@20": 0.0} for g in range(6)])
    write_json(data / "runs" / name / "config.json",
               {"model": model or {}, "train": {}, "processed": "processed", "features": "features"})
    losses = ({"ce_image": 6.0, "ce_text": 6.5, "ce_id": 5.9, "kl_image": 1.0, "kl_text": 1.5, "kl_id": 0.4,
               "distillation_weight": 0.01} if branches else {"ce_ensemble": 6.1})
    write_tsv(data / "runs" / name / "train_log.tsv", [
        {"epoch": e} | {k: v / e for k, v in losses.items()} | {"total": 20.0 / e, "valid_recall@10": 0.01 * e,
                                                               "valid_ndcg@10": 0.005 * e, "seconds": 1.5}
        for e in (1, 2, 3)])


def table(markdown: str, title: str) -> list[list[str]]:
    """The cells of the Markdown table under the heading that starts with `title`."""
    section = markdown.split(f"## {title}")[1].split("##")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]


def test_markdown_table_bolds_only_the_best_of_each_row():
    lines = markdown_table({"Recall@10": [0.1, 0.3, 0.2], "NDCG@10": [0.05, None, 0.12345]}, ["a", "b", "c"],
                           corner="metric").splitlines()
    assert lines[:2] == ["| metric | a | b | c |", "| --- | --- | --- | --- |"]
    assert lines[2] == "| Recall@10 | 0.1000 | **0.3000** | 0.2000 |"
    assert lines[3] == "| NDCG@10 | 0.0500 | - | **0.1235** |"
    assert markdown_table({"loss": [2.0, 1.0]}, ["a", "b"], best=min).endswith("| loss | 2.0000 | **1.0000** |")
    by_column = markdown_table({"x": [0.1, 0.9], "y": [0.2, 0.3]}, ["p", "q"], per_column=True).splitlines()
    assert by_column[2:] == ["| x | 0.1000 | **0.9000** |", "| y | **0.2000** | 0.3000 |"]


@pytest.mark.parametrize("model, name", [
    ({}, None),
    ({"id_mask": True, "imt": True, "imt_layers": 2, "distillation": True, "id_init": "mean", "use_id": True,
      "hidden_size": 128}, None),
    ({"id_mask": False}, "w/o ID mask"),
    ({"imt": False, "imt_layers": 2}, "w/o IMT (1)"),
    ({"imt": False, "imt_layers": 1}, "w/o IMT (2)"),
    ({"distillation": False}, "w/o online distillation"),
    ({"id_init": "text"}, "ID init text"),
    ({"id_init": "image"}, "ID init image"),
    ({"id_init": "random"}, "ID init random"),
    ({"use_id": False}, "ID-free"),
])
def test_ablation_name_of_every_switch(model, name):
    assert ablation_name(model) == name


def test_report_writes_the_tables_and_valid_figures(tmp_path):
    data = tmp_path / "hm-mini"
    write_run(data, "odmt", recall=0.30)
    write_run(data, "no-mask", recall=0.20, model={"id_mask": False})
    write_run(data, "late", recall=0.25, model={"distillation": False}, branches=False)
    out = tmp_path / "reports"
    markdown = report(data / "runs", data / "metrics", out)

    assert (out / "report.md").read_text() == markdown
    assert "hm-mini" in markdown and "90 users, 40 items" in markdown
    overall = table(markdown, "Overall")
    assert overall[0] == ["metric", "late", "no-mask", "odmt"]
    assert [row[0] for row in overall[2:]] == ["Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]
    assert overall[2] == ["Recall@10", "0.2500", "0.2000", "**0.3000**"]
    assert all(sum("**" in cell for cell in row) == 1 for row in overall[2:])

    branch = table(markdown, "Each branch")
    assert [row[0] for row in branch[2:]] == [f"{run} / {b}" for run in ("no-mask", "odmt") for b in ("image", "text", "id")]
    assert [row[0] for row in branch[2:] if "**" in row[1]] == ["odmt / id"]  # best per column
    ablations = table(markdown, "Ablations")
    assert [row[0] for row in ablations[2:]] == ["ODMT (odmt)", "w/o online distillation (late)", "w/o ID mask (no-mask)"]
    assert ablations[2][1] == "**0.3000**"

    figures = ["training_odmt.png", "training_no-mask.png", "training_late.png", "popularity_groups.png"]
    for name in figures:
        assert f"]({name})" in markdown
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100
            image.verify()
    assert sorted(p.name for p in out.iterdir()) == sorted([*figures, "report.md"])  # no temporary files left


def test_ablation_section_needs_a_full_and_an_ablation_run(tmp_path):
    write_run(tmp_path, "odmt", recall=0.3)
    write_run(tmp_path, "odmt-small", recall=0.2, model={"hidden_size": 64})
    assert "Ablations" not in report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "only-full")
    only_ablations = tmp_path / "ablations"
    write_run(only_ablations, "id-free", recall=0.1, model={"use_id": False})
    assert "Ablations" not in report(only_ablations / "runs", only_ablations / "metrics", tmp_path / "only-ablations")
    write_run(tmp_path, "id-free", recall=0.1, model={"use_id": False})
    assert "ID-free (id-free)" in report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "both")
    write_run(tmp_path, "sasrec", recall=0.05, model={"name": "sasrec"}, branches=False)
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "with-baseline")
    assert "sasrec" in table(markdown, "Overall")[0]  # compared in Table 2 ...
    assert not [row for row in table(markdown, "Ablations") if "sasrec" in row[0]]  # ... but not an ablation


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="odmt evaluate"):
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    write_run(tmp_path, "odmt", recall=0.3)
    (tmp_path / "runs" / "odmt" / "config.json").unlink()  # trained elsewhere: no run folder to pair with
    with pytest.raises(InputError, match="odmt evaluate"):
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")

    write_run(tmp_path, "odmt", recall=0.3)
    path = tmp_path / "metrics" / "odmt" / "metrics.json"
    path.write_text(json.dumps({"epoch": 1, "users": 9, "items": 4}))
    with pytest.raises(InputError, match="ensemble") as error:
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    assert str(path) in str(error.value)
    assert not (tmp_path / "out" / "report.md").exists()


def test_command_prints_the_report_and_exits_2_on_bad_input(tmp_path):
    app = typer.Typer()
    app.command()(report_command)
    write_run(tmp_path, "odmt", recall=0.3)
    args = ["--runs", str(tmp_path / "runs"), "--metrics", str(tmp_path / "metrics")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "reports")])
    assert result.exit_code == 0, result.output
    assert "| Recall@10 | **0.3000** |" in result.output
    result = CliRunner().invoke(app, ["--runs", str(tmp_path), "--metrics", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "odmt evaluate" in result.output and "Traceback" not in result.output
