"""What this machine can hold: its memory, so that a trial too large for it is refused before any work (torch
would fail only after the teacher trained, or the kernel would kill the process)."""

from __future__ import annotations

import os
from pathlib import Path

from .files import UnreadableFile, read_regular


def memory_capacity() -> int | None:
    """Bytes of memory this process could ever take: the machine's memory and swap, or less where a cgroup (a
    container, a batch job) limits it; None where neither can be read. Capacity, not what is free now: a busy
    machine may free memory later, but no machine holds more than it has."""
    limits = []
    try:
        meminfo = read_regular(Path("/proc/meminfo"), 1 << 16, follow_links=True).decode("ascii")
        sizes = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo.splitlines() if line.count(" ")}
        limits.append(sizes["MemTotal"] + sizes.get("SwapTotal", 0))
    except (OSError, UnreadableFile, ValueError, KeyError, IndexError):
        pass
    try:
        limit = read_regular(Path("/sys/fs/cgroup/memory.max"), 64, follow_links=True).decode("ascii").strip()
        if limit != "max":
            limits.append(int(limit))
    except (OSError, UnreadableFile, ValueError):
        pass
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (OSError, ValueError):
            pass
    return min(limits) if limits else None


def gigabytes(size: int) -> str:
    return f"{size / 2**30:,.1f} GB"
