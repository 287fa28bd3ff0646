import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from pipeline.artifacts import read_tsv, write_json, write_tsv
from pipeline.errors import InputError
from pipeline.reporting.layout import ablation_name
from pipeline.reporting.report import report
from pipeline.reporting.tables import bolded, cell, markdown_table
from stages.report import report as report_command

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def write_run(
    data: Path,
    name: str,
    recall: float,
    model: dict | None = None,
    branches: bool = True,
    seed: int | None = None,
    popularity: float | None = None,
) -> None:
    """A fake run and metrics folder in the real formats: what `odmt train` and `odmt evaluate` write."""
    name = name if seed is None else f"{name}-seed{seed}"  # as experiments/dvc.yaml names its runs
    split = {key: recall / (2 if key.startswith("ndcg") else 1) + (0.05 if key.endswith("20") else 0) for key in KEYS}
    shares = {"image": 0.5, "text": 0.4, "id": 0.6} if branches else {}
    scorers = {"ensemble": split} | {branch: {k: v * share for k, v in split.items()} for branch, share in shares.items()}
    if popularity is not None:  # odmt evaluate also ranks by popularity
        scorers["popularity"] = dict.fromkeys(KEYS, popularity)
    write_json(
        data / "metrics" / name / "metrics.json",
        {"epoch": 2, "users": 90, "items": 40} | {s: {"valid": v, "test": v} for s, v in scorers.items()},
    )
    write_tsv(
        data / "metrics" / name / "popularity_groups.tsv",
        [
            {
                "group": g,
                "items": 8,
                "users": 18,
                "min_train_count": g,
                "max_train_count": g + 1,
                "recall@10": recall * g / 5,
                "ndcg@10": 0.0,
                "recall@20": 0.0,
                "ndcg@20": 0.0,
            }
            for g in range(6)
        ],
    )
    write_json(
        data / "runs" / name / "config.json",
        {"model": model or {}, "train": {} if seed is None else {"seed": seed}, "processed": "processed", "features": "features"},
    )
    losses = (
        {"ce_image": 6.0, "ce_text": 6.5, "ce_id": 5.9, "kl_image": 1.0, "kl_text": 1.5, "kl_id": 0.4, "distillation_weight": 0.01}
        if branches
        else {"ce_ensemble": 6.1}
    )
    write_tsv(
        data / "runs" / name / "train_log.tsv",
        [
            {"epoch": e}
            | {k: v / e for k, v in losses.items()}
            | {"total": 20.0 / e, "valid_recall@10": 0.01 * e, "valid_ndcg@10": 0.005 * e}
            for e in (1, 2, 3)
        ],
    )


def table(markdown: str, title: str) -> list[list[str]]:
    """The cells of the Markdown table under the heading that starts with `title`."""
    section = markdown.split(f"## {title}")[1].split("##")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]


def test_cells_are_mean_and_sample_std_with_the_best_mean_bold():
    assert cell([]) == "-" and cell([0.12345]) == "0.1235"
    assert cell([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"  # sample std (n - 1)
    rows = bolded({"Recall@10": [[0.1], [0.3], [0.2]], "NDCG@10": [[0.05], [], [0.1, 0.2]]})
    lines = markdown_table(rows, ["a", "b", "c"], corner="metric").splitlines()
    assert lines[:2] == ["| metric | a | b | c |", "| --- | --- | --- | --- |"]
    assert lines[2] == "| Recall@10 | 0.1000 | **0.3000** | 0.2000 |"
    assert lines[3] == "| NDCG@10 | 0.0500 | - | **0.1500 ± 0.0707** |"
    by_column = bolded({"x": [[0.1], [0.9]], "y": [[0.2], [0.3]]}, per_column=True)
    assert by_column == {"x": ["0.1000", "**0.9000**"], "y": ["**0.2000**", "0.3000"]}


@pytest.mark.parametrize(
    "model, name",
    [
        ({}, None),
        (
            {"id_mask": True, "imt": True, "imt_layers": 2, "distillation": True, "id_init": "mean", "use_id": True, "hidden_size": 128},
            None,
        ),
        ({"id_mask": False}, "w/o ID mask"),
        ({"imt": False, "imt_layers": 2}, "w/o IMT (1)"),
        ({"imt": False, "imt_layers": 1}, "w/o IMT (2)"),
        ({"distillation": False}, "w/o online distillation"),
        ({"id_init": "text"}, "ID init text"),
        ({"id_init": "image"}, "ID init image"),
        ({"id_init": "random"}, "ID init random"),
        ({"use_id": False}, "ID-free"),
    ],
)
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
    overall = table(markdown, "Overall")  # the ablations have their own table
    assert overall[0] == ["metric", "odmt"]
    assert [row[0] for row in overall[2:]] == ["Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]
    assert overall[2] == ["Recall@10", "**0.3000**"]

    branch = table(markdown, "Each branch")
    assert [row[0] for row in branch[2:]] == [f"odmt / {b}" for b in ("image", "text", "id")]
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


def test_seeds_make_one_column_and_each_group_finds_its_table(tmp_path):
    # The experiment matrix of params.yaml: ODMT, baselines, a backbone and the T/alpha sweep, over seeds.
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        write_run(tmp_path, "odmt", 0.30 + shift, seed=seed)
        write_run(tmp_path, "sasrec", 0.10 + shift, model={"name": "sasrec"}, branches=False, seed=seed)
    write_run(tmp_path, "sasrec_lf", 0.20, model={"name": "sasrec_lf"}, seed=0)
    write_run(tmp_path, "gru4rec", 0.12, model={"name": "gru4rec"}, branches=False, seed=0)
    write_run(tmp_path, "odmt-gru4rec", 0.35, model={"user_encoder": "gru4rec"}, seed=0)
    write_run(tmp_path, "no-distillation", 0.25, model={"distillation": False}, seed=0)
    write_run(tmp_path, "T0_1", 0.28, model={"temperature": 0.1}, seed=0)
    write_run(tmp_path, "alpha10", 0.31, model={"alpha": 10.0}, seed=0)
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "reports", dataset="hm-sample")

    assert markdown.startswith("# ODMT report: hm-sample\n")
    overall = table(markdown, "Overall")
    assert overall[0] == ["metric", "gru4rec", "sasrec", "sasrec_lf", "odmt", "Improv."]  # the paper's order
    assert overall[2] == ["Recall@10", "0.1200", "0.1200 ± 0.0200", "0.2000", "**0.3200 ± 0.0200**", "+60.0%"]
    assert overall[3][-1] == "+48.0%"  # Recall@20: 0.37 over 0.25
    assert table(markdown, "Backbones")[2:] == [
        ["SASRec", "0.1200 ± 0.0200", "0.1700 ± 0.0200", "0.0600 ± 0.0100", "0.1100 ± 0.0100"],
        ["ODMT (SASRec)", "0.3200 ± 0.0200", "0.3700 ± 0.0200", "0.1600 ± 0.0100", "0.2100 ± 0.0100"],
        ["GRU4Rec", "0.1200", "0.1700", "0.0600", "0.1100"],
        ["ODMT (GRU4Rec)", "**0.3500**", "**0.4000**", "**0.1750**", "**0.2250**"],
    ]
    assert [row[0] for row in table(markdown, "Ablations")[2:]] == ["ODMT (odmt)", "w/o online distillation (no-distillation)"]
    assert [row[:2] for row in table(markdown, "Distillation T")[2:]] == [
        ["None", "0.2500"],
        ["T = 0.1", "0.2800"],
        ["T = 0.5", "**0.3200 ± 0.0200**"],
    ]
    assert [row[:2] for row in table(markdown, "Distillation alpha")[2:]] == [
        ["None", "0.2500"],
        ["alpha = 10", "0.3100"],
        ["alpha = 60", "**0.3200 ± 0.0200**"],
    ]
    assert "mean ± sample std over 1 / 3 seed(s)" in markdown
    assert "](training_odmt-seed0.png)" in markdown and (tmp_path / "reports" / "training_odmt-seed0.png").is_file()


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


def test_the_popularity_ranking_leads_table_2_and_counts_as_a_baseline(tmp_path):
    write_run(tmp_path, "odmt", 0.30, popularity=0.40)
    write_run(tmp_path, "sasrec", 0.10, model={"name": "sasrec"}, branches=False, popularity=0.40)
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "reports")
    overall = table(markdown, "Overall")
    assert overall[0] == ["metric", "Pop", "sasrec", "odmt", "Improv."]
    assert overall[2] == ["Recall@10", "**0.4000**", "0.1000", "0.3000", "-25.0%"]  # ODMT against Pop, the best baseline
    assert "popularity" not in table(markdown, "Each branch")[2][0]
    assert [row[0] for row in table(markdown, "Each branch")[2:]] == [f"odmt / {b}" for b in ("image", "text", "id")]


def test_training_time_is_printed_but_never_written_into_report_md(tmp_path):
    write_run(tmp_path, "odmt", 0.1)
    write_run(tmp_path, "sasrec", 0.05, {"name": "sasrec"}, branches=False)
    write_tsv(tmp_path / "runs" / "odmt" / "timing.tsv", [{"epoch": e, "sequences_per_s": 100.0 * e, "seconds": 2.0} for e in (1, 2, 3)])
    app = typer.Typer()
    app.command()(report_command)
    args = ["--runs", str(tmp_path / "runs"), "--metrics", str(tmp_path / "metrics"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| odmt | 3 | 2.0 | 200 | 6 |" in result.output  # epochs, seconds / epoch, sequences / s, seconds in all
    assert "sasrec |" not in result.output.split("Training time")[1]  # a run without timings has no row
    assert "Training time" not in (tmp_path / "out" / "report.md").read_text()


def test_a_run_whose_log_flags_divergence_is_named_with_its_epoch(tmp_path):
    data = tmp_path / "hm-mini"
    write_run(data, "odmt", recall=0.30, seed=0)
    write_run(data, "odmt", recall=0.20, seed=1)
    log = data / "runs" / "odmt-seed1" / "train_log.tsv"
    rows = [row | {"diverged": int(row["epoch"] >= 2)} for row in read_tsv(log, "odmt train")]
    write_tsv(log, rows)
    markdown = report(data / "runs", data / "metrics", tmp_path / "reports")
    assert "**Diverged**" in markdown and "odmt-seed1 (epoch 2)" in markdown and "odmt-seed0 (epoch" not in markdown
    write_tsv(log, [{k: v for k, v in row.items() if k != "diverged"} for row in rows])
    assert "Diverged" not in report(data / "runs", data / "metrics", tmp_path / "reports")


def test_every_seed_is_held_to_the_stability_bar(tmp_path):
    for seed, recall in enumerate((0.30, 0.32, 0.31)):
        write_run(tmp_path, "odmt", recall, seed=seed)
    for seed, recall in enumerate((0.10, 0.20, 0.15)):
        write_run(tmp_path, "sasrec", recall, {"name": "sasrec"}, branches=False, seed=seed)
        write_run(tmp_path, "unisrec", recall + 0.1, {"name": "unisrec"}, branches=False, seed=seed)
    rows = table(report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out"), "Training stability")
    assert rows[2:] == [
        ["sasrec", "3", "0.1000", "0.1500 ± 0.0500", "+0.0%"],
        ["unisrec", "3", "0.2000", "0.2500 ± 0.0500", "+0.0%"],
        ["odmt", "3", "0.3000", "0.3100 ± 0.0100", "+0.0%"],
    ]
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    assert "within 5% of its minimum: **yes**" in markdown
    assert "best baseline's mean (unisrec, 0.2500): **yes** (worst seed 0.3000)" in markdown
    assert "at most 1.5x SASRec's: **yes** (0.0100 against 0.0500)" in markdown

    write_run(tmp_path, "odmt", 0.14, seed=1)  # one seed far below UniSRec's mean, whose loss ends 10% above its minimum
    log = tmp_path / "runs" / "odmt-seed1" / "train_log.tsv"
    rows = read_tsv(log, "odmt train")
    rows[-1] |= {k: v * 1.1 for k, v in rows[1].items() if k.startswith("ce_")}  # epoch 3: 10% above epoch 2
    write_tsv(log, rows)
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    assert "within 5% of its minimum: **no** (largest: odmt-seed1, +10.0%)" in markdown
    assert "best baseline's mean (unisrec, 0.2500): **no** (worst seed 0.1400)" in markdown
    assert "at most 1.5x SASRec's: **no** (0.0954 against 0.0500)" in markdown
