"""RecBole (the field's standard library) as a peer: its models trained on our split, ranked by our evaluator.

`odmt export recbole` writes the processed users, items and order as atomic files;
RecBole trains SASRec, GRU4Rec or NextItNet on them with its own defaults and its
leave-one-out (`LS: valid_and_test`, `TO`), which is ours. The trained model's scores
are then ranked by pipeline.evaluation.ranking, the code that ranks our models
(history excluded, ties against the target), so the two libraries are compared under
one protocol. RecBole's own full-sort metrics are kept beside them: RecBole does not
exclude history for sequential models, so ranking its scores without exclusion must
give its own numbers, which checks the export and the adapter against RecBole itself.

RecBole is an optional extra (`pip install -e '.[peers]'`) and imported only here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import torch

from pipeline.errors import InputError
from pipeline.evaluation.ranking import RankingTask, item_embeddings, rank_task, ranking_metrics
from pipeline.models.base import Ranker
from pipeline.models.gru4rec import align
from pipeline.peers.config import PeerModel, RecBolePeerConfig

RECBOLE_NAMES: dict[PeerModel, str] = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "nextitnet": "NextItNet"}
INSTALL = "pip install -e '.[peers]'"
SCORER = "recbole"
LOG = "recbole.log"


def import_recbole() -> dict[str, Any]:
    """RecBole's entry points, or an error that says how to install them.

    RecBole 1.2.1 re-assigns NumPy aliases that NumPy 2 removed (`np.float = np.float_`
    in Config.compatibility_settings); giving it the NumPy 2 names of those types lets
    it run on the NumPy the rest of the project uses, instead of pinning NumPy below 2.
    """
    try:
        import numpy as np

        for alias, kind in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
            if alias not in np.__dict__:
                setattr(np, alias, kind)
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed
    except ImportError as error:
        raise InputError(f"RecBole is not installed ({error}). Install the peers extra: {INSTALL}") from None
    return {
        "Config": Config,
        "create_dataset": create_dataset,
        "data_preparation": data_preparation,
        "get_model": get_model,
        "get_trainer": get_trainer,
        "init_seed": init_seed,
    }


def recbole_settings(seed: int, data: Path, config: RecBolePeerConfig, positions: int, device: torch.device) -> dict[str, Any]:
    """RecBole's config for one run on the exported files in `data` (data_path/dataset_name/).

    Everything that makes RecBole's split ours is fixed here (see export_recbole): no
    filters, no duplicate removal, order by the exported positions, leave-one-out, and the
    catalogue read from the .item file too, so an item without interactions (a tuning set's
    items that were only a test target) is a candidate, as it is in our ranking.
    """
    return {
        "data_path": str(data.parent.resolve()),
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        "use_gpu": device.type == "cuda",
        "gpu_id": str(device.index or 0),
        "checkpoint_dir": "saved",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "rm_dup_inter": None,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "MAX_ITEM_LIST_LENGTH": config.max_item_list_length or positions,
        "epochs": config.epochs,
        "stopping_step": config.stopping_step,
        "learning_rate": config.learning_rate,
        "train_batch_size": config.train_batch_size,
        "eval_batch_size": config.eval_batch_size,
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": config.valid_metric,
    } | config.settings


@contextlib.contextmanager
def recbole_run_folder(run: Path) -> Iterator[Path]:
    """RecBole writes its checkpoint and TensorBoard files under the working directory and logs to the
    root logger: run it inside `run`, its log going to run/recbole.log instead of our console."""
    run.mkdir(parents=True, exist_ok=True)
    root, handler = logging.getLogger(), logging.FileHandler(run / LOG, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handlers, level, argv = root.handlers[:], root.level, sys.argv
    root.handlers, sys.argv = [handler], sys.argv[:1]  # RecBole's Config also parses --key=value from argv
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # its deprecation warnings are RecBole's to fix: into its log, not our console
    try:
        with contextlib.chdir(run):
            yield run / LOG
    finally:
        logging.captureWarnings(False)
        handler.close()
        root.handlers, sys.argv = handlers, argv
        root.setLevel(level)


@dataclass
class RecBoleRun:
    """A trained RecBole model (its best checkpoint on valid), its dataset, and its own metrics."""

    model: torch.nn.Module
    item_ids: dict[str, int]  # item token -> RecBole's internal id (0 = [PAD])
    epoch: int
    own_metrics: dict[str, dict[str, float]]  # {"valid"|"test": RecBole's full-sort metrics, history not excluded}


def train_recbole(
    model: PeerModel, seed: int, data: Path, run: Path, config: RecBolePeerConfig, positions: int, device: torch.device
) -> RecBoleRun:
    """Train RecBole's `model` on the atomic files in `data`, its files and log in `run`; load its best checkpoint."""
    recbole = import_recbole()
    settings = recbole_settings(seed, data, config, positions, device)
    with recbole_run_folder(run) as log_file:
        try:
            setup = recbole["Config"](model=RECBOLE_NAMES[model], dataset=data.name, config_dict=settings)
            recbole["init_seed"](seed, True)
            dataset = recbole["create_dataset"](setup)
            train_data, valid_data, test_data = recbole["data_preparation"](setup, dataset)
            recbole["init_seed"](seed, True)
            network = recbole["get_model"](setup["model"])(setup, train_data._dataset).to(setup["device"])
            trainer = recbole["get_trainer"](setup["MODEL_TYPE"], setup["model"])(setup, network)
            best = keep_best(trainer)
            trainer.fit(train_data, valid_data, saved=True, show_progress=False)
            network.load_state_dict(best["state_dict"])
            network.load_other_parameter(best["other_parameter"])
            own = {
                split: {k: float(v) for k, v in trainer.evaluate(loader, load_best_model=False).items()}
                for split, loader in (("valid", valid_data), ("test", test_data))
            }
        except Exception as error:  # RecBole's failures are its own: name the model and where its log is
            raise InputError(f"RecBole's {RECBOLE_NAMES[model]} (seed {seed}) failed: {error!r}. Its log: {log_file}") from error
    return RecBoleRun(network.eval(), dict(dataset.field2token_id["item_id"]), int(best["epoch"]) + 1, own)


def keep_best(trainer: Any) -> dict[str, Any]:
    """What RecBole's trainer saves at each better valid score (weights, other parameters, epoch), also kept in memory.

    RecBole reloads its best checkpoint by unpickling the file it wrote (the file pickles its
    Config, so torch's weights-only load refuses it); reading the copy kept here instead
    unpickles nothing. RecBole still writes its file, for its users.
    """
    best: dict[str, Any] = {}
    save = trainer._save_checkpoint

    def save_and_keep(epoch: int, *args: Any, **kwargs: Any) -> None:
        best.update(
            epoch=epoch,
            state_dict={k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            other_parameter=copy.deepcopy(trainer.model.other_parameter()),
        )
        save(epoch, *args, **kwargs)

    trainer._save_checkpoint = save_and_keep
    return best


class RecBoleRanker(Ranker):
    """A trained RecBole sequential model behind the interface our evaluator ranks (pipeline/models/base.py).

    Its score for item j is RecBole's full_sort_predict: the sequence output against the
    item embedding table. Histories arrive as ours (left-padded item_idx); RecBole reads
    right-padded internal ids with their lengths, so each row is translated and moved.
    """

    branches = (SCORER,)

    def __init__(self, run: RecBoleRun, items: pa.Table) -> None:
        self.network, self.name = run.model.eval(), type(run.model).__name__  # it ranks without dropout
        self.to_recbole = torch.zeros(items.num_rows + 1, dtype=torch.long)  # item_idx -> RecBole id, 0 -> 0
        for idx, item_id in zip(items["item_idx"].to_pylist(), items["item_id"].to_pylist()):
            if item_id not in run.item_ids:
                raise InputError(f"item {item_id!r} is not in RecBole's dataset: the export and the processed items differ")
            self.to_recbole[idx] = run.item_ids[item_id]

    def all_item_embeddings(self) -> dict[str, torch.Tensor]:
        """{"recbole": (N + 1, d)}: RecBole's item table in our item order."""
        table = cast(torch.nn.Embedding, self.network.item_embedding).weight.detach()
        return {SCORER: table[self.to_recbole.to(table.device)]}

    def user_embeddings(self, histories: torch.Tensor, items: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """histories (U, L) left-padded item_idx -> RecBole's sequence output (U, d)."""
        valid = histories != 0
        sequence = self.to_recbole.to(histories.device)[histories].gather(1, align(valid, to_left=False))  # right-padded
        length = valid.sum(dim=1)
        # NextItNet's forward takes no lengths: it reads the last position of the padded row, as RecBole ranks it.
        output = self.network(sequence) if self.name == "NextItNet" else self.network(sequence, length)
        return {SCORER: output.float()}


def rank_recbole(
    ranker: RecBoleRanker, tasks: dict[str, RankingTask], users_per_batch: int, items_per_batch: int, ks: tuple[int, ...]
) -> dict[str, dict[str, float]]:
    """{split: Recall/NDCG@k} of RecBole's scores, ranked by our evaluator."""
    items = item_embeddings(ranker)
    by = {SCORER: [SCORER]}
    return {
        split: ranking_metrics(rank_task(ranker, task, items, by, users_per_batch, items_per_batch)[SCORER], ks)
        for split, task in tasks.items()
    }
