"""The plan of a launch: for each job, its cache entry, its status (read once, as data) and what
to do with it. Reading a status writes nothing."""

from __future__ import annotations

import logging
import typing as tp
from dataclasses import dataclass

from ..cache.store import Entry, JobFailure, Status
from . import jobref
from .options import Mode

logger = logging.getLogger(__name__)

# run: compute it; read: run it through the job side, which reads its result back (a launcher
# that must give each job its own run, e.g. under Hydra's basic sweeper); wait: another process
# computes it; skip: its recorded outcome (or its absence, read-only) is the answer
Action = tp.Literal["skip", "wait", "run", "read"]


@dataclass
class Step:
    """One job of a plan."""

    entry: Entry | None  # None: no cache folder, always run
    status: Status = "not submitted"
    failure: JobFailure | None = None  # why a job ended without any record (not yet written)
    action: Action = "run"
    clear: bool = False  # run over an outcome found at planning time (force, retry)


def read_status(entry: Entry) -> tuple[Status, JobFailure | None]:
    """Files first (one stat each); the job reference is asked only about submitted, unfinished
    jobs (``jobref``: small files and one rate-limited squeue, nothing written, submitted or
    unpickled). A job that ended without a result or an error file is "failed", with the reason
    (not written: whoever acts on it records it)."""
    status = entry.file_status()
    if status is not None:
        return status, None
    data = entry.read_job()
    if data is None:  # maybe another process is computing it right now
        return ("not submitted" if entry.claim_is_stale() else "running"), None
    ref = jobref.parse(data)
    if ref.is_alive() is not False:  # alive, or cannot be told from here: not decided
        return "running", None
    status = entry.file_status()  # it may have finished in between
    if status is not None:
        return status, None
    if not entry.claim_is_stale():
        return "running", None  # the process that submitted it is alive and will record the outcome
    if not ref.started:  # its launch is gone before anything ran it: nothing to report, compute it
        return "not submitted", None
    return "failed", ref.failure()


def decide(status: Status, mode: Mode) -> Action:
    if mode == "read-only":
        return "skip"
    if status == "running":  # even under force: another process is computing it right now
        return "wait"
    if mode == "force":
        return "run"
    if status == "completed":
        return "skip"
    if status == "failed":
        return "run" if mode == "retry" else "skip"
    return "run"


def plan(entries: tp.Sequence[Entry | None], mode: Mode) -> list[Step]:
    steps = []
    for entry in entries:
        if entry is None:
            steps.append(Step(None))
            continue
        status, failure = read_status(entry)
        action = decide(status, mode)
        if action == "run" and status == "not submitted" and entry.read_job() is not None:
            logger.warning("%s: its job was submitted by a launch that is gone before anything ran it: computing it here", entry.folder)
        steps.append(Step(entry, status, failure, action, clear=action == "run" and status in ("completed", "failed")))
    return steps
