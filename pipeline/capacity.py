"""Refuse a size this machine cannot hold before any work starts, with the estimate and the option that lowers it.

A paper-sized benchmark that runs out of memory an hour in (or is killed by the kernel
without a message) tells its user nothing; an estimate checked up front does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.errors import InputError

GIB = 2**30


def free_memory() -> int:
    """Bytes a process can take now without swapping (Linux MemAvailable; elsewhere the free pages)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def require_memory(needed: int, what: str, lower: str) -> None:
    """InputError when `what` needs more than the free memory."""
    free = free_memory()
    if needed > free:
        raise InputError(f"{what} needs about {needed / GIB:.1f} GiB of memory, and {free / GIB:.1f} GiB is free. "
                         f"Lower {lower}.")


def require_disk(out: Path, needed: int, what: str, lower: str) -> None:
    """InputError when the file system `out` will be on (its nearest existing folder) has fewer than `needed` bytes free."""
    existing = next(folder for folder in (out, *out.parents) if folder.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise InputError(f"{what} takes about {needed / GIB:.1f} GiB, and {existing} has {free / GIB:.1f} GiB free. "
                         f"Lower {lower}, or write to another disk.")
