"""`odmt case-study`: a few test users' histories beside what each scorer ranks first, for a reader to judge.

The paper argues that the image, text and ID branches see different things; Recall@k says
how often each is right, not what it sees. This module picks test users with a seeded RNG
and ranks the full catalogue for each exactly as evaluate's test task does (input: the
training part and the valid item; history excluded as `evaluate.exclude_history` says),
through the ranking module: the target's rank per scorer is `rank_task`'s, the number
ranks.parquet holds, and each scorer's top k are the same scores (`Ranker.score`) over the
same candidates. The page itself is written by pipeline/evaluation/case_study_page.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.dataset.processed import leave_one_out, read_processed
from pipeline.errors import InputError
from pipeline.evaluation.config import CaseStudyConfig, EvaluateConfig
from pipeline.evaluation.ranking import RankingTask, inference_model, item_embeddings, rank_task, scorers, test_task
from pipeline.formats.images import MISSING, ImageSource, image_problem, resolve_inside
from pipeline.models.base import Ranker
from pipeline.models.checkpoints import load_run
from pipeline.runtime import resolve_device, set_up_cpu_process


@dataclass(frozen=True)
class ShownItem:
    """An item as the page shows it: its ids, its title and where its photo is."""

    item_idx: int
    item_id: str
    title: str
    image_path: str  # as in items.parquet: relative to the raw folder, or lmdb:<file>#<key>


@dataclass(frozen=True)
class UserCase:
    """One test user: what the model read, what came next, and what each scorer put first."""

    user_idx: int
    user_id: str
    history: list[ShownItem]  # the test input (training part, then the valid item), oldest first
    read: int  # the user encoder reads the latest `read` of them (model.positions); all are excluded from the lists
    target: ShownItem  # the test item
    target_rank: dict[str, int]  # scorer -> the target's rank among every item (ties against it), as ranks.parquet
    top: dict[str, list[ShownItem]]  # scorer -> its top k, best first

    @property
    def target_in_history(self) -> bool:
        """A repeat purchase: under history exclusion no list can hold it, and its rank is the worst."""
        return any(item.item_idx == self.target.item_idx for item in self.history)


@dataclass(frozen=True)
class CaseStudy:
    """Everything the page shows, and what it was computed from."""

    run: Path
    raw: Path
    users: int  # test users in the processed data, of which `cases` were drawn
    items: int  # the catalogue every scorer ranks
    seed: int
    k: int
    exclude_history: bool
    scorers: list[str]  # the ensemble (ODMT's prediction), then each branch alone
    cases: list[UserCase]

    def shown(self) -> dict[int, ShownItem]:
        """Every item on the page, once, by item_idx: each photo is checked and shrunk once however often it shows."""
        lists = (item for case in self.cases for top in case.top.values() for item in top)
        return {item.item_idx: item for item in (*(i for case in self.cases for i in (*case.history, case.target)), *lists)}


def choose_users(users: int, count: int, seed: int, sequences: Path) -> list[int]:
    """`count` distinct user_idx of `users`, drawn by a NumPy generator seeded with `seed`, in user order."""
    if count > users:
        raise InputError(
            f"case_study.users = {count} is more than the {users} test users of {sequences}; lower it (--users {users} or fewer)."
        )
    return sorted(np.random.default_rng(seed).choice(users, size=count, replace=False).tolist())


@torch.no_grad()
def top_items(
    model: Ranker, task: RankingTask, items: dict[str, torch.Tensor], by: dict[str, list[str]], k: int
) -> dict[str, list[list[int]]]:
    """{scorer: each user's top-k item_idx, best first}: `Ranker.score` over the candidates `rank_task` counts.

    Padding and each user's excluded items are no candidates; a user left with fewer than k
    candidates gets fewer items.
    """
    device = next(iter(items.values())).device
    users = model.user_embeddings(task.histories.to(device), items)
    scores = model.score(users, items, by)  # {scorer: (U, N + 1)}
    top: dict[str, list[list[int]]] = {}
    for name, score in scores.items():
        score = score.clone()
        score[:, 0] = float("-inf")
        for row, excluded in enumerate(task.exclude):
            score[row, excluded] = float("-inf")
        best = score.topk(min(k, score.shape[1]), dim=1)
        top[name] = [
            [item for item, value in zip(indices, values) if value != float("-inf")]
            for indices, values in zip(best.indices.tolist(), best.values.tolist())
        ]
    return top


def photo(raw: Path, item: ShownItem) -> ImageSource:
    """Where an item's photo is under `raw`; InputError when it is not there."""
    source = resolve_inside(raw, item.image_path)
    if source is None:
        raise InputError(
            f"item {item.item_id}: its image_path {item.image_path!r} leads outside --raw {raw}; pass the raw folder it was prepared from."
        )
    if image_problem(source, decode=False) == MISSING:
        raise InputError(
            f"item {item.item_id}: its photo {source} is missing. Pass the --raw folder the data was prepared from, or restore the file."
        )
    return source


@torch.no_grad()
def case_study(run: Path, processed: Path, features: Path, raw: Path, config: CaseStudyConfig, evaluate: EvaluateConfig) -> CaseStudy:
    """Draw `config.users` test users, rank every item for each as evaluate's test task does; every shown photo checked present."""
    if not raw.is_dir():
        raise InputError(f"--raw {raw}: no such folder. Pass the raw folder the processed data was prepared from (its photos are shown).")
    set_up_cpu_process(evaluate.cpu_threads)
    device = resolve_device(evaluate.device)
    items_table, sequences = read_processed(processed)
    if config.k > items_table.num_rows:
        raise InputError(f"case_study.k = {config.k} is more than the {items_table.num_rows} items of {processed}; lower it.")
    chosen = choose_users(sequences.num_rows, config.users, config.seed, processed / "sequences.parquet")
    model, _ = load_run(run, processed, features, device, evaluate.item_features)
    model = inference_model(model, evaluate.precision)
    items = item_embeddings(model)
    by = scorers(model.branches, each_branch=True)  # every branch alone, whatever evaluate.each_branch: the page compares them
    users = sequences.take(chosen)
    task = test_task(users, model.config.positions, evaluate.exclude_history)
    ranks = rank_task(model, task, items, by, evaluate.users_per_batch, evaluate.items_per_batch)
    tops: dict[str, list[list[int]]] = {name: [] for name in by}
    for start in range(0, len(chosen), evaluate.users_per_batch):
        block = slice(start, start + evaluate.users_per_batch)
        part = RankingTask(task.histories[block], task.targets[block], task.exclude[block])
        for name, lists in top_items(model, part, items, by, config.k).items():
            tops[name] += lists

    catalogue = [
        ShownItem(int(row["item_idx"]), row["item_id"], row["text"] or "", row["image_path"])
        for row in items_table.select(["item_idx", "item_id", "text", "image_path"]).to_pylist()
    ]
    cases = []
    for row, (user_idx, user_id, sequence) in enumerate(zip(*(users[c].to_pylist() for c in ("user_idx", "user_id", "items")))):
        split = leave_one_out(sequence)
        cases.append(
            UserCase(
                user_idx=user_idx,
                user_id=user_id,
                history=[catalogue[i - 1] for i in (*split.train, split.valid)],
                read=model.config.positions,
                target=catalogue[split.test - 1],
                target_rank={name: int(ranks[name][row]) for name in by},
                top={name: [catalogue[i - 1] for i in tops[name][row]] for name in by},
            )
        )
    study = CaseStudy(run, raw, sequences.num_rows, items_table.num_rows, config.seed, config.k, evaluate.exclude_history, list(by), cases)
    for item in study.shown().values():
        photo(raw, item)
    return study
