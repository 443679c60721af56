"""This process's peak memory, read the way that stays right for child processes (stdlib only)."""
from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> int:
    """This process's peak resident memory. /proc's VmHWM, not getrusage: Linux carries ru_maxrss over
    fork + exec, so a process started by a large one would report its starter's memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
