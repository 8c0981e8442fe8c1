"""CPU time and resident memory of a process, from /proc (Linux; standard library only, so
the load generator can import it without trio or rawstream)."""

from __future__ import annotations

import os

__all__ = ["cpu_seconds_of", "rss_bytes_of"]


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes_of(pid: int) -> int:
    """Resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no VmRSS for pid {pid}")
