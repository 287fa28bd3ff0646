"""`odmt compare recbole`: RecBole's SASRec, GRU4Rec and NextItNet beside ours, on one split, ranked by one evaluator.

For every model x seed of the `compare` section, in `out`:
  recbole/data/odmt/          the processed data as RecBole atomic files (odmt export recbole)
  recbole/<model>-seed<s>/    RecBole's run: recbole.log, its checkpoint, metrics.json
  ours/<model>-seed<s>/       our run (experiments.runs.<model>, else the model and train sections) and metrics/
  comparison.json, comparison.md   both side by side, mean ± std over the seeds
A run whose metrics exist is not trained again, so an interrupted comparison continues.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.artifacts import atomic_path, write_json
from pipeline.config import Params, run_params
from pipeline.dataset.export import export_recbole
from pipeline.dataset.processed import read_processed
from pipeline.errors import InputError
from pipeline.evaluation.config import POPULARITY_RANKING
from pipeline.evaluation.evaluate import METRICS, evaluate
from pipeline.evaluation.ranking import RankingTask, test_task, validation_task
from pipeline.models.checkpoints import LAST
from pipeline.peers.config import PeerModel
from pipeline.peers.recbole import RECBOLE_NAMES, SCORER, RecBoleRanker, rank_recbole, train_recbole
from pipeline.reporting.runs import read_json
from pipeline.reporting.tables import cell, markdown_table
from pipeline.runtime import resolve_device, set_cpu_threads
from pipeline.training.loop import train

log = logging.getLogger(__name__)

DATASET = "odmt"  # RecBole's name for the exported dataset
LIBRARIES = ("recbole", "ours")
SPLITS = ("valid", "test")


def compare_recbole(processed: Path, features: Path, out: Path, params: Params) -> dict[str, Any]:
    """Train and rank every model x seed with RecBole and with ours; write comparison.json and comparison.md."""
    config = params.compare
    set_cpu_threads(params.train.cpu_threads)
    items, sequences = read_processed(processed)
    data = out / "recbole" / "data" / DATASET
    export_recbole(processed, data, DATASET)
    positions = config.recbole.max_item_list_length or params.model.positions
    exclude = params.evaluate.exclude_history
    # ours, and RecBole's own protocol (history kept) to check the adapter against RecBole's evaluator
    tasks = {flag: split_tasks(sequences, positions, flag) for flag in {exclude, False}}
    runs = []
    for model in config.models:
        for seed in config.seeds:
            runs.append(recbole_run(model, seed, data, out, items, tasks, params, positions))
            runs.append(our_run(model, seed, processed, features, out, params))
    result = {
        "processed": str(processed),
        "users": sequences.num_rows,
        "items": items.num_rows,
        "positions": {"recbole": positions, "ours": params.model.positions},
        "exclude_history": exclude,
        "seeds": list(config.seeds),
        "runs": runs,
        "summary": summary(runs),
    }
    write_json(out / "comparison.json", result)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(comparison_markdown(result), encoding="utf-8")
    return result


def split_tasks(sequences: pa.Table, positions: int, exclude_history: bool) -> dict[str, RankingTask]:
    return {"valid": validation_task(sequences, positions, exclude_history), "test": test_task(sequences, positions, exclude_history)}


def recbole_run(
    model: PeerModel,
    seed: int,
    data: Path,
    out: Path,
    items: pa.Table,
    tasks: dict[bool, dict[str, RankingTask]],
    params: Params,
    positions: int,
) -> dict[str, Any]:
    """RecBole's run of `model` at `seed`, trained and ranked unless its metrics exist."""
    run = out / "recbole" / f"{model}-seed{seed}"
    if not (run / METRICS).is_file():
        log.info("RecBole %s, seed %d: training in %s", RECBOLE_NAMES[model], seed, run)
        trained = train_recbole(model, seed, data, run, params.compare.recbole, positions, resolve_device(params.compare.device))
        ranker, ev = RecBoleRanker(trained, items), params.evaluate
        ranked = {
            excluded: rank_recbole(ranker, splits, ev.users_per_batch, ev.items_per_batch, ev.ks) for excluded, splits in tasks.items()
        }
        write_json(
            run / METRICS,
            {
                "epoch": trained.epoch,
                SCORER: ranked[params.evaluate.exclude_history],
                "recbole_own": trained.own_metrics,
                "ours_without_exclusion": ranked.get(False),
            },
        )
    return {"library": "recbole", "model": model, "seed": seed, "folder": str(run)} | read_metrics(run / METRICS, SCORER)


def our_run(model: PeerModel, seed: int, processed: Path, features: Path, out: Path, params: Params) -> dict[str, Any]:
    """Our run of `model` at `seed` (resumed if interrupted), trained and evaluated unless its metrics exist."""
    run = out / "ours" / f"{model}-seed{seed}"
    metrics = run / "metrics"
    if not (metrics / METRICS).is_file():
        log.info("ours %s, seed %d: training in %s", model, seed, run)
        ours = our_params(params, model)
        train(processed, features, run, ours.model, replace(ours.train, seed=seed), resume=(run / LAST).is_file())
        evaluate(run, processed, features, metrics, params.evaluate)
    return {"library": "ours", "model": model, "seed": seed, "folder": str(run)} | read_metrics(metrics / METRICS, "ensemble")


def our_params(params: Params, model: PeerModel) -> Params:
    """Our `model`: the experiment matrix's run of that name where there is one, so a model's own recipe
    (experiments.runs.sasrec) is the same in the matrix and here; else the model and train sections."""
    if model not in params.experiments.runs:
        return replace(params, model=replace(params.model, name=model))
    ours = run_params(params, model)
    if ours.model.name != model:
        raise InputError(
            f"params.yaml: experiments.runs.{model} trains model.name {ours.model.name!r}, but "
            f"`odmt compare` reads the run of that name as our {model}; set model.name: {model} there"
        )
    return ours


def read_metrics(path: Path, scorer: str) -> dict[str, Any]:
    """A run's epoch and `scorer`'s valid and test metrics, with the checks and Pop where present."""
    metrics = read_json(path, "odmt compare recbole")
    kept = {"epoch": metrics["epoch"], "valid": metrics[scorer]["valid"], "test": metrics[scorer]["test"]}
    for extra in ("recbole_own", "ours_without_exclusion", POPULARITY_RANKING):
        if metrics.get(extra):
            kept[extra] = metrics[extra]
    return kept


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """{model: {library: {split: {metric: [value per seed]}}}}, and Pop's (from our evaluate; one value)."""
    table: dict[str, Any] = {}
    for run in runs:
        by_split = table.setdefault(run["model"], {}).setdefault(run["library"], {})
        for split in SPLITS:
            for metric, value in run[split].items():
                by_split.setdefault(split, {}).setdefault(metric, []).append(value)
        if POPULARITY_RANKING in run:
            table["pop"] = {"ours": {split: {k: [v] for k, v in run[POPULARITY_RANKING][split].items()} for split in SPLITS}}
    return table


def comparison_markdown(result: dict[str, Any]) -> str:
    summary_table, ks = result["summary"], sorted({int(k.split("@")[1]) for k in next(iter(result["runs"]))["test"]})
    columns = [f"test {m}@{k}" for m in ("recall", "ndcg") for k in ks] + ["valid recall@10", "valid ndcg@10"]
    rows = {}
    for model, libraries in sorted(summary_table.items(), key=lambda entry: entry[0] == "pop"):  # Pop last
        for library in (lib for lib in LIBRARIES if lib in libraries):
            metrics = libraries[library]
            name = "Pop" if model == "pop" else f"{RECBOLE_NAMES[model]}, {'RecBole 1.2.1' if library == 'recbole' else 'ours'}"
            rows[name] = [cell(metrics[c.split()[0]][c.split()[1]]) for c in columns]
    checks = [
        (run["model"], run["seed"], run["recbole_own"]["test"]["recall@10"], run["ours_without_exclusion"]["test"]["recall@10"])
        for run in result["runs"]
        if run.get("ours_without_exclusion")
    ]
    lines = [
        f"# RecBole and ours on one split: {result['processed']}",
        "",
        f"{result['users']} users, {result['items']} items; leave-one-out, full ranking over every item, "
        f"history {'excluded' if result['exclude_history'] else 'included'}, ties counted against the target; "
        f"inputs of at most {result['positions']['recbole']} (RecBole) and {result['positions']['ours']} (ours) items. "
        f"Mean ± sample std over seeds {result['seeds']}; each run's checkpoint chosen on valid, test read once.",
        "",
        markdown_table(rows, columns, "model"),
        "",
    ]
    if checks:
        lines += [
            "RecBole's own evaluator against ours on RecBole's scores, history not excluded (test Recall@10; "
            "equal when the export and the adapter are right):",
            "",
        ]
        lines += [f"- {RECBOLE_NAMES[m]} seed {s}: RecBole {own:.4f}, ours {mine:.4f}" for m, s, own, mine in checks]
    return "\n".join(lines) + "\n"
