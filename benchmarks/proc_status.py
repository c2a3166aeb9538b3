"""A process's figures from /proc/PID/status (Linux): peak and current resident memory
(VmHWM, VmRSS, in kB) and its thread count. VmHWM is the process's own peak, unlike
ru_maxrss, which a child inherits from its parent over fork."""

from __future__ import annotations

from pathlib import Path

FIELDS = ("VmHWM", "VmRSS", "Threads")


def status_of(pid: int | str) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in FIELDS:
            fields[name] = int(value.split()[0])
    return fields
