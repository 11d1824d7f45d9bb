"""What this machine can hold: its free memory, so that a trial too large for it is refused before any work
(torch would fail only after the teacher trained, or the kernel would kill the process)."""

from __future__ import annotations

import os
from pathlib import Path

from .files import UnreadableFile, read_regular


def available_memory() -> int | None:
    """Bytes of memory this process may still take: the kernel's MemAvailable, or less where a cgroup (a container,
    a batch job) limits it; None where neither can be read."""
    limits = []
    try:
        for line in read_regular(Path("/proc/meminfo"), 1 << 16, follow_links=True).decode("ascii").splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, UnreadableFile, ValueError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit, used = (read_regular(cgroup / name, 64, follow_links=True).decode("ascii").strip()
                       for name in ("memory.max", "memory.current"))
        if limit != "max":
            limits.append(max(int(limit) - int(used), 0))
    except (OSError, UnreadableFile, ValueError):
        pass
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (OSError, ValueError):
            pass
    return min(limits) if limits else None


def gigabytes(size: int) -> str:
    return f"{size / 2**30:,.1f} GB"
