"""CPU accounting from Linux ``/proc``: who used the machine's cores during a measuring window.

Everything returns NaN where ``/proc`` is missing, so the benchmark still runs
(without these columns) on other systems.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 onwards)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(parent: int) -> list[int]:
    """The direct children of ``parent``."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry))
    return found


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by the live processes among ``pids``."""
    total = 0
    seen = False
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
            seen = True
    return total / _TICKS if seen else float("nan")


def machine_busy_seconds() -> float:
    """CPU seconds all cores together spent not idle since boot (the ``cpu`` line of ``/proc/stat``)."""
    try:
        with open("/proc/stat") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / _TICKS
