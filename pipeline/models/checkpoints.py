"""A trained model's run folder: its file names, its weights in and out of a checkpoint, and the model
rebuilt from its best checkpoint alone (evaluate, recommend).

The safetensors I/O itself is pipeline/checkpoint.py; what only training needs (the optimiser
state, resuming, the recipe a resume must keep) is the training loop's (training/loop.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.config import build
from pipeline.errors import InputError
from pipeline.features.items import feature_identities, load_item_features
from pipeline.models.base import Recommender
from pipeline.models.config import ModelConfig
from pipeline.models.registry import build_model
from pipeline.runtime import FeatureStorage

BEST, LAST, LOG, CONFIG = "best.safetensors", "last.safetensors", "train_log.tsv", "config.json"
# Seconds and sequences/s per epoch: measured, so not a function of the inputs. Kept out of every file DVC hashes
# or git tracks (train_log.tsv, last.safetensors), so a repeated `dvc repro` writes the same bytes; .gitignore and
# .dvcignore name it.
TIMING = "timing.tsv"
WEIGHTS = "model."  # checkpoint tensor names: model.<state_dict key>, beside optimizer.state.* in the last one
BEST_VALUES = ("model_config", "features", "epoch", "valid")  # the plain values of each checkpoint


def checkpoint_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as checkpoint tensors: model.<state_dict key>."""
    return {f"{WEIGHTS}{name}": tensor for name, tensor in model.state_dict().items()}


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], checkpoint: Path, fix: str) -> None:
    """The checkpoint's model.* tensors into `model`; what does not fit is named in one sentence (torch lists every key)."""
    state = {name.removeprefix(WEIGHTS): tensor for name, tensor in tensors.items() if name.startswith(WEIGHTS)}
    expected = model.state_dict()
    differences = [f"{key} missing" for key in sorted(expected.keys() - state.keys())]
    differences += [f"{key} unexpected" for key in sorted(state.keys() - expected.keys())]
    differences += [
        f"{key} {list(state[key].shape)} where the model has {list(expected[key].shape)}"
        for key in sorted(state.keys() & expected.keys())
        if state[key].shape != expected[key].shape
    ]
    if differences:
        more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
        raise InputError(
            f"{checkpoint}: its weights do not fit the model its model_config builds ({'; '.join(differences[:3])}{more}). {fix}"
        )
    model.load_state_dict(state)


def check_features(trained_on: dict[str, dict[str, Any]], features: Path, checkpoint: Path) -> None:
    """InputError unless `features` are the stores the checkpoint was trained on."""
    given = feature_identities(features)
    if trained_on != given:
        changed = sorted(f"{m}.{key}" for m in trained_on for key in trained_on[m] if given.get(m, {}).get(key) != trained_on[m][key])
        raise InputError(
            f"{features}: not the features {checkpoint} was trained on (differs in {', '.join(changed)}). "
            "Pass the run's features folder, or retrain on these."
        )


def read_run_config(run: Path, fix: str) -> dict[str, Any]:
    """The run's config.json: what it was trained with and whether it finished."""
    path = run / CONFIG
    if not path.is_file():
        raise InputError(f"{path}: missing, so {run} is not a run written by `odmt train`. {fix}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}). {fix}") from None
    if not isinstance(record, dict) or not {"model", "train", "world_size", "complete"} <= record.keys():
        raise InputError(f"{path}: not the config.json `odmt train` writes (model, train, world_size, complete). {fix}")
    return record


def load_run(run: Path, processed: Path, features: Path, device: torch.device, storage: FeatureStorage = "auto") -> tuple[Recommender, int]:
    """The run's best checkpoint as an eval-mode model on `device`, and the epoch it was selected at.

    A run that did not finish (cut short, or still training) is refused: its best is not the run's.
    """
    path = run / BEST
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint. Train first: odmt train --out {run} ...")
    if not read_run_config(run, f"Train it again: delete {run}, then odmt train --out {run} ...")["complete"]:
        raise InputError(
            f"{run}: training did not finish (config.json says complete: false). "
            f"Finish it with odmt train --resume --out {run} ..., then evaluate."
        )
    fix = f"Delete {run} and train it again, or restore the file."
    tensors, checkpoint = load_checkpoint(path, fix, BEST_VALUES)
    check_features(checkpoint["features"], features, path)
    model_config = build(ModelConfig, checkpoint["model_config"], where=f"{path}:model_config")
    model = build_model(model_config, load_item_features(processed, features, device, storage)).to(device)
    load_weights(model, tensors, path, fix)
    return model.eval(), checkpoint["epoch"]
