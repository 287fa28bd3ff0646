"""PyTorch's distributed engine as the stages use it: joining torchrun's process group, and the collectives.

Every helper is the identity (or a no-op) when no group of more than one process is
joined, so the same code runs single-process unchanged.
"""

from __future__ import annotations

import atexit
from typing import Any

import torch
import torch.distributed as dist

from pipeline.runtime import cluster


def join(device: torch.device) -> None:
    """Join torchrun's process group (NCCL for a CUDA device, gloo for the CPU); single-process, nothing to join.

    Once per process, left at exit: one command may run several stages' work (`odmt
    extract` does text, then image), and joining a group again after leaving it can hang.
    """
    if cluster().distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the joined process group; (0, 1) without one, whatever the environment says."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def collective_device() -> torch.device:
    """Where tensors must be for the group's backend: NCCL exchanges GPU memory only."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if active():
        dist.barrier()


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of `values` over every rank (itself when single-process)."""
    if not active():
        return values
    total = values.to(collective_device()).clone()
    dist.all_reduce(total)
    return total.to(values.device)


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's `rows` (n_r, ...) concatenated in rank order: the whole from its parts, exactly."""
    if not active():
        return rows
    counts = [int(n) for n in gather_padded(torch.tensor([len(rows)]), 1)]
    padded = gather_padded(rows, max(counts)).view(len(counts), max(counts), *rows.shape[1:])
    return torch.cat([part[:n] for part, n in zip(padded, counts)]).to(rows.device)


def gather_padded(rows: torch.Tensor, length: int) -> torch.Tensor:
    """Every rank's `rows`, zero-padded to `length`, stacked in rank order: (world * length, ...). No gradient."""
    padded = torch.nn.functional.pad(rows, (0, 0) * (rows.dim() - 1) + (0, length - len(rows))).to(collective_device())
    parts = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat(parts)


def max_over_ranks(count: int) -> int:
    if not active():
        return count
    total = torch.tensor([count], device=collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.MAX)
    return int(total.item())


def other_ranks_rows(rows: torch.Tensor, length: int) -> torch.Tensor:
    """The other ranks' `rows` (n_r, ...), each zero-padded to `length`, in rank order.

    Differentiable: the gradient a rank's loss puts on another rank's rows is sent back
    to their owner and summed there, so the parameters that produced them learn from
    every rank's loss.
    """
    everyone = GatherRows.apply(rows, length).view(dist.get_world_size(), length, *rows.shape[1:])
    return torch.cat([part for rank, part in enumerate(everyone) if rank != dist.get_rank()])


class GatherRows(torch.autograd.Function):
    """gather_padded with a backward: each rank's share of the summed gradient, unpadded."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, length: int) -> torch.Tensor:
        ctx.rows, ctx.length = len(rows), length
        return gather_padded(rows, length).to(rows.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        start = dist.get_rank() * ctx.length
        return sum_over_ranks(grad.contiguous())[start : start + ctx.rows], None
