import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from pipeline.artifacts import read_tsv, write_json, write_parquet, write_tsv
from pipeline.errors import InputError
from pipeline.reporting.config import ReportConfig
from pipeline.reporting.layout import ablation_name
from pipeline.reporting.report import report as write_report
from pipeline.reporting.tables import Entry, Uncertainty, cell, markdown_table, noise_note, significance_cells
from stages.report import report as report_command

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
USERS = 90
CONFIG = ReportConfig(bootstrap_samples=2000, permutations=2000)


def report(runs: Path, metrics: Path, out: Path, dataset: str | None = None) -> str:
    return write_report(runs, metrics, out, CONFIG, dataset)


def user_pattern(name: str) -> np.ndarray:
    """+1 for half the users, -1 for the others, in an order of `name`'s own: value * (1 + this) averages to value,
    as a Recall column of 0s and 1s would. Runs of one pattern differ on every user the same way (significant);
    runs of different patterns differ this way and that (noise)."""
    return np.random.default_rng(zlib.crc32(name.encode())).permutation(np.repeat([1.0, -1.0], USERS // 2))


def write_user_metrics(path: Path, scorers: dict[str, dict[str, float]], pattern: str, targets: int = 40) -> None:
    """user_metrics.parquet as `odmt evaluate` writes it, whose means are the scorers' metrics."""
    parts = []
    for split in ("valid", "test"):
        for scorer, metrics in scorers.items():
            shape = user_pattern("popularity" if scorer == "popularity" else pattern)
            cases = {"user_idx": range(USERS), "user_id": [f"u{u}" for u in range(USERS)], "split": [split] * USERS}
            cases |= {"scorer": [scorer] * USERS, "target": [1 + u % targets for u in range(USERS)]}
            parts.append(pa.table(cases | {key: value * (1 + shape) for key, value in metrics.items()}))
    write_parquet(path, pa.concat_tables(parts))


def write_run(
    data: Path,
    name: str,
    recall: float,
    model: dict | None = None,
    branches: bool = True,
    seed: int | None = None,
    popularity: float | None = None,
    pattern: str | None = None,
) -> None:
    """A fake run and metrics folder in the real formats: what `odmt train` and `odmt evaluate` write; per user, the
    metrics follow `pattern` (default: the run's own, see user_pattern)."""
    name = name if seed is None else f"{name}-seed{seed}"  # as experiments/dvc.yaml names its runs
    split = {key: recall / (2 if key.startswith("ndcg") else 1) + (0.05 if key.endswith("20") else 0) for key in KEYS}
    shares = {"image": 0.5, "text": 0.4, "id": 0.6} if branches else {}
    scorers = {"ensemble": split} | {branch: {k: v * share for k, v in split.items()} for branch, share in shares.items()}
    if popularity is not None:  # odmt evaluate also ranks by popularity
        scorers["popularity"] = dict.fromkeys(KEYS, popularity)
    write_json(
        data / "metrics" / name / "metrics.json",
        {"epoch": 2, "users": USERS, "items": 40} | {s: {"valid": v, "test": v} for s, v in scorers.items()},
    )
    write_user_metrics(data / "metrics" / name / "user_metrics.parquet", scorers, pattern or name)
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


def words(markdown: str, title: str) -> str:
    """The text under the table of `title`."""
    section = markdown.split(f"## {title}")[1].split("##")[0]
    return " ".join(line for line in section.splitlines() if line and not line.startswith("|"))


def value(text: str) -> str:
    """A cell less its bold and its interval: "**0.3000 ± 0.0100 [0.2, 0.4]**" -> "0.3000 ± 0.0100"."""
    return text.strip("*").split(" [")[0]


def interval(text: str) -> tuple[float, float]:
    low, high = text.strip("*").split(" [")[1].split("]")[0].split(", ")
    return float(low), float(high)


def entry(name: str, users: list[list[float]], row: str) -> Entry:
    values = np.array(users, dtype=float)
    return Entry(name, list(values.mean(axis=1)), values, (name, "ensemble", row))


def test_cells_are_mean_std_and_interval_and_only_a_significant_best_is_bold():
    assert cell([]) == "-" and cell([0.12345]) == "0.1235"
    assert cell([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"  # sample std (n - 1)
    uncertainty = Uncertainty(CONFIG)
    ones, zeros, half = [1.0] * 20, [0.0] * 20, [1.0, 0.0] * 10
    rows = {
        "clear": [entry("a", [ones], "clear"), entry("b", [zeros], "clear")],  # 20 users better: p = 2 / 2^20
        "noise": [entry("a", [half], "noise"), entry("b", [half[1:] + half[:1]], "noise")],  # the same mean, every user differs
        "alone": [entry("a", [half], "alone"), Entry("b", [], np.empty((0, 0)), ("b", "", ""))],
        "seeds": [entry("a", [ones, half], "seeds"), entry("b", [half, zeros], "seeds")],
    }
    cells, verdicts = significance_cells(rows, uncertainty)
    assert cells["clear"] == ["**1.0000 [1.0000, 1.0000]**", "0.0000 [0.0000, 0.0000]"]
    assert not any("**" in c for c in cells["noise"]) and value(cells["noise"][0]) == "0.5000"
    assert cells["alone"][1] == "-" and "**" not in cells["alone"][0]
    assert value(cells["seeds"][0]) == "0.7500 ± 0.3536" and cells["seeds"][0].startswith("**")
    low, high = interval(cells["seeds"][0])
    assert low < 0.75 < high  # seeds resampled: 0.5 or 1 per seed
    note = noise_note(list(rows), verdicts, uncertainty, "row")
    assert note == "Within noise (paired over the same users, p ≥ 0.05): noise: b (p = 1.000) within noise of a."
    lines = markdown_table({"Recall@10": ["x", "y"]}, ["a", "b"], corner="metric").splitlines()
    assert lines == ["| metric | a | b |", "| --- | --- | --- |", "| Recall@10 | x | y |"]


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
    write_run(data, "no-mask", recall=0.20, model={"id_mask": False}, pattern="odmt")  # below ODMT on every user
    write_run(data, "late", recall=0.25, model={"distillation": False}, branches=False)  # below it here and above it there
    out = tmp_path / "reports"
    markdown = report(data / "runs", data / "metrics", out)

    assert (out / "report.md").read_text() == markdown
    assert "hm-mini" in markdown and "90 users, 40 items" in markdown and "95% bootstrap interval" in markdown
    overall = table(markdown, "Overall")  # the ablations have their own table
    assert overall[0] == ["metric", "odmt"]
    assert [row[0] for row in overall[2:]] == ["Recall@10", "Recall@20", "NDCG@10", "NDCG@20"]
    assert value(overall[2][1]) == "0.3000" and "**" not in overall[2][1]  # one column: nothing to be better than
    assert interval(overall[2][1])[0] < 0.3 < interval(overall[2][1])[1]
    assert "nothing is compared" in words(markdown, "Overall")

    branch = table(markdown, "Each branch")
    assert [row[0] for row in branch[2:]] == [f"odmt / {b}" for b in ("image", "text", "id")]
    assert [row[0] for row in branch[2:] if "**" in row[1]] == ["odmt / id"]  # best per column, above both others
    ablations = table(markdown, "Ablations")
    assert [row[0] for row in ablations[2:]] == ["ODMT (odmt)", "w/o online distillation (late)", "w/o ID mask (no-mask)"]
    assert value(ablations[2][1]) == "0.3000" and "**" not in ablations[2][1]  # not significantly above "late"
    note = words(markdown, "Ablations")
    assert "Recall@10: w/o online distillation (late) (p = " in note and "within noise of ODMT (odmt)" in note
    assert "w/o ID mask (no-mask) (p" not in note  # significantly below ODMT: not named

    figures = ["training_odmt.png", "training_no-mask.png", "training_late.png", "popularity_groups.png"]
    for name in figures:
        assert f"]({name})" in markdown
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100
            image.verify()
    assert sorted(p.name for p in out.iterdir()) == sorted([*figures, "report.md"])  # no temporary files left
    assert report(data / "runs", data / "metrics", out) == markdown  # seeded: the same runs, the same report


def test_seeds_make_one_column_and_each_group_finds_its_table(tmp_path):
    # The experiment matrix of params.yaml: ODMT, baselines, a backbone and the T/alpha sweep, over seeds.
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        write_run(tmp_path, "odmt", 0.30 + shift, seed=seed, pattern="shared")
        write_run(tmp_path, "sasrec", 0.10 + shift, model={"name": "sasrec"}, branches=False, seed=seed, pattern="shared")
    write_run(tmp_path, "sasrec_lf", 0.20, model={"name": "sasrec_lf"}, seed=0, pattern="shared")
    write_run(tmp_path, "gru4rec", 0.12, model={"name": "gru4rec"}, branches=False, seed=0, pattern="shared")
    write_run(tmp_path, "odmt-gru4rec", 0.35, model={"user_encoder": "gru4rec"}, seed=0)
    write_run(tmp_path, "no-distillation", 0.25, model={"distillation": False}, seed=0)
    write_run(tmp_path, "T0_1", 0.28, model={"temperature": 0.1}, seed=0)
    write_run(tmp_path, "alpha10", 0.31, model={"alpha": 10.0}, seed=0)
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "reports", dataset="hm-sample")

    assert markdown.startswith("# ODMT report: hm-sample\n")
    overall = table(markdown, "Overall")
    assert overall[0] == ["metric", "gru4rec", "sasrec", "sasrec_lf", "odmt", "Improv."]  # the paper's order
    assert [value(c) for c in overall[2][:5]] == ["Recall@10", "0.1200", "0.1200 ± 0.0200", "0.2000", "0.3200 ± 0.0200"]
    assert overall[2][4].startswith("**")  # above every baseline on every user
    assert overall[2][5].startswith("**+60.0% [") and overall[2][5].endswith("p < 0.001**")  # 0.32 over 0.20, paired
    assert overall[3][-1].startswith("**+48.0% [")  # Recall@20: 0.37 over 0.25
    assert "odmt against the best baseline of its row (sasrec_lf on Recall@10, Recall@20, NDCG@10, NDCG@20)" in markdown
    assert "Significant on every metric." in markdown
    assert [[value(c) for c in row] for row in table(markdown, "Backbones")[2:]] == [
        ["SASRec", "0.1200 ± 0.0200", "0.1700 ± 0.0200", "0.0600 ± 0.0100", "0.1100 ± 0.0100"],
        ["ODMT (SASRec)", "0.3200 ± 0.0200", "0.3700 ± 0.0200", "0.1600 ± 0.0100", "0.2100 ± 0.0100"],
        ["GRU4Rec", "0.1200", "0.1700", "0.0600", "0.1100"],
        ["ODMT (GRU4Rec)", "0.3500", "0.4000", "0.1750", "0.2250"],
    ]
    assert [[value(c) for c in row[:2]] for row in table(markdown, "Distillation T")[2:]] == [
        ["None", "0.2500"],
        ["T = 0.1", "0.2800"],
        ["T = 0.5", "0.3200 ± 0.0200"],
    ]
    assert [[value(c) for c in row[:2]] for row in table(markdown, "Distillation alpha")[2:]] == [
        ["None", "0.2500"],
        ["alpha = 10", "0.3100"],
        ["alpha = 60", "0.3200 ± 0.0200"],
    ]
    assert "within noise of T = 0.5" in words(markdown, "Distillation T")  # each its own users: noise
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


def test_per_user_metrics_must_be_there_match_metrics_json_and_share_the_test_cases(tmp_path):
    write_run(tmp_path, "odmt", recall=0.3)
    write_run(tmp_path, "sasrec", recall=0.1, model={"name": "sasrec"}, branches=False)
    path = tmp_path / "metrics" / "sasrec" / "user_metrics.parquet"
    path.unlink()  # evaluated before evaluate wrote it
    with pytest.raises(InputError, match="odmt evaluate") as error:
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    assert f"{path}: missing" in str(error.value)

    write_user_metrics(path, {"ensemble": dict.fromkeys(KEYS, 0.2)}, "sasrec")  # from another evaluation than metrics.json
    with pytest.raises(InputError, match="does not average to metrics.json") as error:
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    assert str(path) in str(error.value)

    scorers = {"ensemble": {key: (0.1 if key.startswith("recall") else 0.05) + 0.05 * key.endswith("20") for key in KEYS}}
    write_user_metrics(path, scorers, "sasrec", targets=30)  # the same users, other targets: another processed set
    with pytest.raises(InputError, match="cannot be compared user by user") as error:
        report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "out")
    message = str(error.value)
    assert "runs odmt (trained on processed) and sasrec" in message and "other targets" in message and "--processed" in message
    assert not (tmp_path / "out" / "report.md").exists()


def test_command_prints_the_report_and_exits_2_on_bad_input(tmp_path):
    app = typer.Typer()
    app.command()(report_command)
    write_run(tmp_path, "odmt", recall=0.3)
    args = ["--runs", str(tmp_path / "runs"), "--metrics", str(tmp_path / "metrics")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "reports"), "-S", "report.bootstrap_samples=500"])
    assert result.exit_code == 0, result.output
    assert "| Recall@10 | 0.3000 [" in result.output
    result = CliRunner().invoke(app, ["--runs", str(tmp_path), "--metrics", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "odmt evaluate" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "-S", "report.confidence=1.5"])
    assert result.exit_code == 2 and "report.confidence = 1.5" in result.output and "Traceback" not in result.output
    (tmp_path / "metrics" / "odmt" / "user_metrics.parquet").unlink()
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "user_metrics.parquet: missing" in result.output and "Traceback" not in result.output


def test_the_popularity_ranking_leads_table_2_and_counts_as_a_baseline(tmp_path):
    write_run(tmp_path, "odmt", 0.30, popularity=0.40, pattern="popularity")
    write_run(tmp_path, "sasrec", 0.10, model={"name": "sasrec"}, branches=False, popularity=0.40, pattern="popularity")
    markdown = report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "reports")
    overall = table(markdown, "Overall")
    assert overall[0] == ["metric", "Pop", "sasrec", "odmt", "Improv."]
    assert [value(c) for c in overall[2][:4]] == ["Recall@10", "0.4000", "0.1000", "0.3000"] and overall[2][1].startswith("**")
    assert overall[2][4].startswith("**-25.0% [")  # ODMT against Pop, the best baseline, below it on every user
    assert "(Pop on Recall@10, Recall@20, NDCG@10, NDCG@20)" in markdown
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


def test_a_baseline_of_zero_has_no_relative_gain_but_a_p_value(tmp_path):
    write_run(tmp_path, "odmt", 0.30, popularity=0.0)  # Pop hits no test target: a relative gain would be infinite
    overall = table(report(tmp_path / "runs", tmp_path / "metrics", tmp_path / "reports"), "Overall")
    assert overall[0] == ["metric", "Pop", "odmt", "Improv."]
    assert overall[2][1] == "0.0000 [0.0000, 0.0000]" and overall[2][2].startswith("**0.3000 [")
    assert overall[2][3] == "- (baseline 0; p < 0.001)"
