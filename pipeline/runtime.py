"""Where and how tensors run: device, mixed precision, CPU threads, this process's rank. Shared by every torch stage.

torch is imported inside the functions so that configs can name `Device`, `Precision` and `FeatureStorage`
without loading it.

torchrun (or any launcher following its contract) sets RANK, WORLD_SIZE, LOCAL_RANK and
LOCAL_WORLD_SIZE; without them a stage is one process. Devices follow LOCAL_RANK, the
process's index on its own node (the authors' code used the global rank, which names a
GPU that does not exist on the second node).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pipeline.errors import InputError

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
# Where the frozen item features live: read per batch from the HDF5 shards (bounded memory), or loaded whole onto
# the device (a GPU steps faster than the shards are read); auto: memory on CUDA, shards on CPU.
FeatureStorage = Literal["auto", "memory", "shards"]


@dataclass(frozen=True)
class Cluster:
    """This process's place among the processes torchrun started."""

    rank: int = 0  # across every node
    world_size: int = 1
    local_rank: int = 0  # on this node: which GPU it drives
    local_world_size: int = 1  # processes on this node: they share its CPU cores

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 alone writes shared artifacts (checkpoints, logs, manifests) and reports progress."""
        return self.rank == 0


def cluster() -> Cluster:
    """Read from torchrun's environment; one process when it is absent."""
    env = os.environ
    return Cluster(
        *(int(env.get(name, default)) for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", 1)))
    )


def resolve_device(choice: Device) -> torch.device:
    """The CPU, or the GPU of this process: under torchrun the LOCAL_RANK-th of its node (made current)."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "train.device, evaluate.device, extract.device or compare.device: 'cuda' asked for, but torch "
            "sees no GPU; set it to auto or cpu (-S train.device=cpu), or install a CUDA build of torch."
        )
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", cluster().local_rank)
    torch.cuda.set_device(device)
    return device


def resolve_precision(device: torch.device, precision: Precision, bf16_on_cpu: bool = False) -> Precision:
    """auto: on CUDA bf16 (fp16 where bf16 is unsupported); on CPU bf16 only for callers that
    opt in (training) and only where the CPU multiplies bf16 natively, else fp32."""
    import torch

    if precision != "auto":
        return precision
    if device.type == "cpu":
        return "bf16" if bf16_on_cpu and native_cpu_bf16() else "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(device: torch.device, precision: Precision, bf16_on_cpu: bool = False) -> contextlib.AbstractContextManager:
    import torch

    precision = resolve_precision(device, precision, bf16_on_cpu)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it times the work, not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def native_cpu_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matrix products ~3x faster than fp32 (measured 364 vs 119 GFLOP/s on 2 cores)."""
    import torch

    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default start; fixed, so large blocks always go back to the system
ONEDNN_PRIMITIVE_CACHE = "128"  # per-shape bf16 kernels oneDNN keeps (its default 1024); 0 was 25% slower


def limit_cpu_memory_growth() -> None:
    """Keep a training or ranking process's memory flat on CPU, where bf16 autocast grew it by ~130 MB a step.

    Every step has new shapes (the batch's distinct items and targets). glibc raises its
    mmap threshold whenever a large block is freed, so later large blocks come from the
    heap, fragment it and are never returned; oneDNN caches kernels per shape. Measured
    on hm-sample (ODMT, d = 128, batch 128, 8 epochs, 2 cores): peak 5.0 GB without
    either, 1.8 GB with both, at the same speed and the same losses. Settings a user exported win.
    """
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and platform.system() == "Linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_PRIMITIVE_CACHE)


def set_cpu_threads(threads: int) -> None:
    """Intra-op threads for the main process; 0 means one per core, shared by the processes torchrun put on this node."""
    import torch

    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // cluster().local_world_size))


def set_up_cpu_process(threads: int) -> None:
    """A training or ranking process: flat memory on CPU (limit_cpu_memory_growth), then its intra-op threads."""
    limit_cpu_memory_growth()
    set_cpu_threads(threads)


def single_thread_worker(_: int) -> None:
    """DataLoader worker init: decoding workers must not compete with the forward pass for cores."""
    import torch

    torch.set_num_threads(1)
