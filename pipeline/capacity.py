"""Refuse a size this machine cannot hold before any work starts, with the estimate and the option that lowers it.

A paper-sized benchmark that runs out of memory an hour in (or is killed by the kernel
without a message) tells its user nothing; an estimate checked up front does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.errors import InputError

GIB, MIB = 2**30, 2**20


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
        raise InputError(f"{what} needs about {needed / GIB:.1f} GiB of memory, and {free / GIB:.1f} GiB is free. Lower {lower}.")


def free_disk(path: Path) -> tuple[Path, int]:
    """The nearest existing folder of `path` (the file system it is or will be on) and its free bytes."""
    existing = next(folder for folder in (path, *path.parents) if folder.is_dir())
    return existing, shutil.disk_usage(existing).free


def require_disk(out: Path, needed: int, what: str, lower: str) -> None:
    """InputError when the file system `out` will be on has fewer than `needed` bytes free."""
    existing, free = free_disk(out)
    if needed > free:
        raise InputError(
            f"{what} takes about {size(needed)}, and {existing} has {size(free)} free. Lower {lower}, or write to another disk."
        )


def size(n: int) -> str:
    """Bytes in GiB, MiB or bytes, whichever reads as more than 0.0 (a full disk: `4096 bytes free`, not `0.0 GiB`)."""
    if n >= GIB / 10:
        return f"{n / GIB:.1f} GiB"
    return f"{n / MIB:.1f} MiB" if n >= MIB / 10 else f"{n} bytes"
