"""The processes of this host: a claim or a job reference names one by host, pid and start time,
so a dead process (or a reused pid) is told from a live one."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is alive (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" without /proc): with the pid, it
    names one process, whatever pid is reused later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of proc(5); fields[0] is field 3


def process_alive(host: str, pid: int, start: str = "") -> bool | None:
    """Whether that process is alive: None when it runs on another host (cannot tell from here).
    An empty ``start`` (older records) checks the pid alone."""
    if host and host != hostname():
        return None
    if not pid_alive(pid):
        return False
    return not start or start_time(pid) in ("", start)


def slurm_job_id() -> str | None:
    """This process's Slurm job (``<array>_<task>`` in an array), None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None
