"""The CUDA path end to end, once, on a machine with a GPU; prints one table.

On the embedded sample (hm-mini): ingest, prepare, extract, train ODMT (bf16 autocast, the
committed recipe), evaluate, and both benchmarks (`odmt bench extract`, `odmt bench train`).
On the 6,000-user synthetic shape (`odmt sample synthetic` with the paper's feature shapes):
three epochs of ODMT, evaluate, and `odmt bench train` at d = 128 and d = 384. Each command is
the one a user runs, with `-S <stage>.device=cuda`; any failure stops the check with its log.

    make setup && .venv/bin/python scripts/gpu_check.py [--work DIR]

Numbers are printed, never written into the project: paste the table into docs/performance.md
with the date and the GPU's name.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ODMT = [sys.executable, "-m", "stages.cli"]
SYNTHETIC_SHAPE = ["--users", "6029", "--items", "3142", "--image-tokens", "50", "--text-tokens", "30", "--feature-dim", "384"]


def run(name: str, args: list[str], work: Path) -> tuple[float, str]:
    """Runs `odmt <args>` from the repository; returns its wall seconds and its output."""
    start = time.perf_counter()
    result = subprocess.run([*ODMT, *args], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (work / f"{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        sys.exit(f"{name} failed (exit {result.returncode}); its whole output is in {work / f'{name}.log'}:\n{tail}")
    return seconds, result.stdout


def counts(output: str) -> dict[str, str]:
    """The `key | value` rows of the tables a bench command prints (the last value of a key wins)."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def training(run_dir: Path) -> str:
    with (run_dir / "timing.tsv").open() as file:
        epochs = list(csv.DictReader(file, delimiter="\t"))
    rate = sum(float(row["sequences_per_s"]) for row in epochs) / len(epochs)
    return f"{len(epochs)} epochs, {rate:.0f} sequences/s, {float(epochs[-1]['seconds']):.1f} s an epoch"


def test_recall(metrics: Path) -> str:
    result = json.loads((metrics / "metrics.json").read_text())["ensemble"]["test"]
    return f"test Recall@10 {result['recall@10']:.4f}"


def bench_train(output: str) -> str:
    # benchmark_train prints deduplicate_items=True then False: the first table is the one training uses.
    first = counts(output.split("deduplicate_items=False")[0])
    keys = ("train_sequences_per_s", "validation_items_per_s", "device_synchronisations_per_step", "peak_cuda_mib", "precision")
    return ", ".join(f"{key} {first.get(key, '-')}" for key in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="Folder for the check's data (default: a new temporary one).")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu runs the same steps where no GPU is (slow).")
    arguments = parser.parse_args()
    work = arguments.work or Path(tempfile.mkdtemp(prefix="odmt-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    on_device = [arg for stage in ("extract", "train", "evaluate") for arg in ("-S", f"{stage}.device={arguments.device}")]
    machine = "torch.cuda.get_device_name()" if arguments.device == "cuda" else "'cpu'"
    probe = subprocess.run([sys.executable, "-c", f"import torch; print(torch.__version__, {machine})"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"no CUDA device for torch here ({probe.stderr.strip().splitlines()[-1]}); run on a GPU machine, or pass --device cpu")
    mini, synthetic, raw = work / "hm-mini", work / "synthetic", REPO / "data" / "raw" / "hm-mini"
    for folder in (mini, synthetic):
        shutil.rmtree(folder, ignore_errors=True)
    rows: list[tuple[str, str, float, str]] = []

    def step(dataset: str, name: str, args: list[str], result: str | Callable[[str], str]) -> None:
        """Run one command; `result` is the table's text for it, or reads it from the command's output."""
        seconds, output = run(f"{dataset}-{name}", args, work)
        rows.append((dataset, name, seconds, result(output) if callable(result) else result))

    data = ["--processed", str(mini / "processed"), "--features", str(mini / "features")]
    step("hm-mini", "ingest", ["ingest", "hm", "--raw", str(raw), "--out", str(mini / "interim")], "")
    step("hm-mini", "prepare", ["prepare", "--interim", str(mini / "interim"), "--raw", str(raw), "--out", str(mini / "processed")], "")
    step(
        "hm-mini",
        "extract",
        ["extract", "--processed", str(mini / "processed"), "--raw", str(raw), "--out", str(mini / "features"), *on_device],
        "text and image",
    )
    step("hm-mini", "train odmt", ["train", *data, "--out", str(mini / "run"), *on_device], lambda _: training(mini / "run"))
    step(
        "hm-mini",
        "evaluate",
        ["evaluate", "--run", str(mini / "run"), *data, "--out", str(mini / "metrics"), *on_device],
        lambda _: test_recall(mini / "metrics"),
    )
    step(
        "hm-mini",
        "bench extract",
        ["bench", "extract", "--processed", str(mini / "processed"), "--raw", str(raw), "--items", "64", *on_device],
        lambda output: ", ".join(f"{k} {v}" for k, v in counts(output).items() if "per_s" in k),
    )
    step("hm-mini", "bench train", ["bench", "train", *data, "--steps", "5", *on_device], bench_train)

    data = ["--processed", str(synthetic / "processed"), "--features", str(synthetic / "features")]
    step("6,029 users", "sample synthetic", ["sample", "synthetic", "--out", str(synthetic), *SYNTHETIC_SHAPE], "")
    step(
        "6,029 users",
        "train odmt, 3 epochs",
        ["train", *data, "--out", str(synthetic / "run"), "-S", "train.epochs=3", *on_device],
        lambda _: training(synthetic / "run"),
    )
    step(
        "6,029 users",
        "evaluate",
        ["evaluate", "--run", str(synthetic / "run"), *data, "--out", str(synthetic / "metrics"), *on_device],
        lambda _: test_recall(synthetic / "metrics"),
    )
    for width in (128, 384):
        step(
            "6,029 users",
            f"bench train, d = {width}",
            ["bench", "train", *data, "--steps", "10", "-S", f"model.hidden_size={width}", *on_device],
            bench_train,
        )

    table = [f"\n{probe.stdout.strip()} (torch, device); logs in {work}\n", "| set | step | seconds | result |", "|---|---|---|---|"]
    table += [f"| {dataset} | {name} | {seconds:.1f} | {result} |" for dataset, name, seconds, result in rows]
    sys.stdout.write("\n".join([*table, f"\ntotal {sum(row[2] for row in rows):.0f} s\n"]))


if __name__ == "__main__":
    main()
