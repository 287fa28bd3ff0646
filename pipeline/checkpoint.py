"""Checkpoints as safetensors files: tensors by name, every plain value as JSON in the header.

No pickle is read or written, so a checkpoint is data that cannot run code (a planted
file is refused as not a checkpoint), and its bytes are a function of its content:
safetensors sorts the tensors, and the JSON keeps the order the code builds its values in
(a train log's columns stay in order), so a resumed run's last checkpoint equals an
uninterrupted run's byte for byte (DVC hashes it). Writes are atomic and checked against the free disk
first; every failure to read one is an InputError naming the file and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from pipeline.artifacts import atomic_path
from pipeline.capacity import require_disk
from pipeline.errors import InputError

PLAIN = "odmt"  # the one header metadata entry: a second would be written in hash-map order, not one fixed order
OPTIMIZER_STATE = "optimizer.state."  # tensor names of the optimiser's state: optimizer.state.<param>.<key>


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    """Write `tensors` and the JSON values `plain` to `path` atomically, refused up front when the disk cannot hold it."""
    data = safetensors.torch.save(unshared(tensors), {PLAIN: json.dumps(plain, separators=(",", ":"))})
    require_disk(path.parent, len(data), f"{path} ({len(data):,} bytes)", "model.hidden_size (or free space there)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_checkpoint(path: Path, fix: str, needs: Collection[str] = ()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and plain values of the checkpoint at `path`, which must hold the plain keys `needs`.

    Tensors come on the CPU: `load_state_dict` copies them to the model's device, and an
    optimiser keeps its step counts on the CPU, where it expects them. A missing, empty,
    truncated or foreign file (a pickle, another program's safetensors) is an InputError
    naming the file and `fix`.
    """
    try:
        with safetensors.torch.safe_open(path, framework="pt") as file:
            header = (file.metadata() or {}).get(PLAIN)
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path}: not a readable checkpoint ({error}). {fix}") from None
    try:
        plain = None if header is None else json.loads(header)
    except json.JSONDecodeError:
        plain = None
    if not isinstance(plain, dict) or not set(needs) <= plain.keys():
        raise InputError(f"{path}: a safetensors file without this pipeline's checkpoint values ({', '.join(sorted(needs))}). {fix}")
    return tensors, plain


def unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` with every one that shares memory with an earlier one copied (safetensors refuses shared memory).

    Tied weights are then stored twice; `load_state_dict` writes both copies into the one
    tied parameter, so they are tied again after loading.
    """
    seen: set[tuple[torch.device, int]] = set()
    kept = {}
    for name, tensor in sorted(tensors.items()):
        memory = (tensor.device, tensor.untyped_storage().data_ptr())
        kept[name] = tensor.clone() if memory in seen else tensor.contiguous()
        if tensor.numel():
            seen.add(memory)
    return kept


def split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state_dict as (tensors named optimizer.state.<param>.<key>, the rest as JSON values)."""
    tensors, plain = {}, {"param_groups": state_dict["param_groups"], "state": {}}
    for param, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER_STATE}{param}.{key}"] = value
            else:
                plain["state"].setdefault(str(param), {})[key] = value
    return tensors, plain


def join_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    """The state_dict `split_optimizer` split: the inverse, for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {int(param): dict(values) for param, values in plain["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith(OPTIMIZER_STATE):
            param, key = name.removeprefix(OPTIMIZER_STATE).split(".", 1)
            state.setdefault(int(param), {})[key] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}
