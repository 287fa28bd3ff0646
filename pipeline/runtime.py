"""Where and how tensors run: device, mixed precision, CPU threads. Shared by every torch stage.

torch is imported inside the functions so that configs can name `Device` and `Precision`
without loading it.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def resolve_device(choice: Device) -> torch.device:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but torch sees no GPU: install a CUDA build of torch or use 'cpu'")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """Mixed precision: on CUDA by default (bf16 where supported, else fp16); on CPU only if asked."""
    import torch

    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return contextlib.nullcontext()
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def set_cpu_threads(threads: int) -> None:
    """Intra-op threads for the main process; 0 means one per core."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def single_thread_worker(_: int) -> None:
    """DataLoader worker init: decoding workers must not compete with the forward pass for cores."""
    import torch

    torch.set_num_threads(1)
