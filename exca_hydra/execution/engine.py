"""The engine: claim the jobs a plan runs, submit them to a backend, collect their outcomes.

Used by ``TaskInfra.apply``/``job_array()`` and by both Hydra launchers, so there is one claim
protocol, one way to wait, and one place where an outcome nobody wrote is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import time
import typing as tp

from ..cache.store import Entry, JobFailure, Status
from . import jobref
from .backends import Backend, TaskLost
from .pull import reconcile_owned
from .plan import Step, read_status

logger = logging.getLogger(__name__)


def poll(ready: tp.Callable[[], bool], max_delay: float = 5.0, first_delay: float = 0.1) -> None:
    """Wait until ``ready()``, asking again after a growing delay."""
    delay = first_delay
    while not ready():
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


@contextlib.contextmanager
def claimed(steps: tp.Sequence[Step]) -> tp.Iterator[list[int]]:
    """Claim the entries of the steps to run; yield the positions this process runs. A step
    whose entry another live process holds (or has just finished or submitted) becomes "wait".
    Every claim taken here is released on exit, whatever happened."""
    mine: list[int] = []
    ready: list[int] = []
    try:
        for position, step in enumerate(steps):
            if step.action not in ("run", "read"):
                continue
            entry = step.entry
            if entry is None or step.action == "read":  # nothing to compute: no claim
                ready.append(position)
                continue
            if not entry.claim():
                step.action = "wait"
                continue
            mine.append(position)
            # after the claim, look again: the previous holder may have just finished or submitted
            if not step.clear and (entry.file_status() is not None or _live_job(entry)):
                entry.release()
                mine.pop()
                step.action = "wait"
            elif step.clear:
                entry.clear_outcome(keep_result=True)  # force/retry: what was there when we looked (a result set aside)
        yield sorted(mine + ready)
    finally:
        for position in mine:
            entry = steps[position].entry
            if entry is not None:
                entry.release()


def _live_job(entry: Entry) -> bool:
    """Whether the job its reference names is alive (the claim, ours now, is not asked)."""
    data = entry.read_job()
    return data is not None and jobref.parse(data).is_alive() is not False


def holder(entry: Entry) -> str:
    """Who computes an entry another process holds: its job, else its claim (file, host, age)."""
    data = entry.read_job()
    return jobref.parse(data).describe() if data is not None else entry.describe_claim()


def wait_for(entries: tp.Sequence[Entry], max_delay: float = 5.0) -> list[tuple[Status, JobFailure | None]]:
    """Wait until no entry is running (computed by another process); their final statuses."""
    out: dict[int, tuple[Status, JobFailure | None]] = {}
    said = False

    def ready() -> bool:
        nonlocal said
        reconcile_owned()  # this process's own pull launches: it alone acts on them
        for i, entry in enumerate(entries):
            if i not in out:
                status = read_status(entry)
                if status[0] != "running":
                    out[i] = status
                elif not said:  # once: whose computation this waits for, until its lease ends
                    logger.info("Waiting for %s, computed by another process: %s", entry.folder, holder(entry))
                    said = True
        return len(out) == len(entries)

    poll(ready, max_delay, first_delay=0.2)
    return [out[i] for i in range(len(entries))]


class Outcome(tp.NamedTuple):
    """One job's outcome as its task returned it, or why its task was lost."""

    value: tp.Any
    lost: JobFailure | None


def collect(
    backend: Backend,
    handles: tp.Sequence[tp.Any],
    tasks: tp.Sequence[tp.Sequence[int]],
    on_end: tp.Callable[[int, Outcome], None],
    on_pass: tp.Callable[[list[int]], None] | None = None,
    max_delay: float = 2.0,
) -> None:
    """Wait for every task; ``on_end(job index, outcome)`` as each job's task ends; ``on_pass``
    (the tasks still waiting) after each pass, e.g. for a progress display."""
    try:
        _collect(backend, handles, tasks, on_end, on_pass, max_delay)
    except BaseException:  # e.g. Ctrl-C: local processes must not outlive their launch (a Slurm job may)
        cancel = getattr(backend, "cancel", None)
        if cancel is not None:
            cancel()
        raise


def _collect(
    backend: Backend,
    handles: tp.Sequence[tp.Any],
    tasks: tp.Sequence[tp.Sequence[int]],
    on_end: tp.Callable[[int, Outcome], None],
    on_pass: tp.Callable[[list[int]], None] | None,
    max_delay: float,
) -> None:
    waiting = list(range(len(handles)))
    delay = 0.2
    while waiting:
        ended = backend.ended([handles[p] for p in waiting])
        still = []
        for position, is_done in zip(waiting, ended):
            if not is_done:
                still.append(position)
                continue
            try:
                values = handles[position].returns()
                outcomes = [Outcome(value, None) for value in values]
            except TaskLost as lost:
                outcomes = [Outcome(None, lost.failure)] * len(tasks[position])
            for index, outcome in zip(tasks[position], outcomes):
                on_end(index, outcome)
        waiting = still
        if on_pass is not None:
            on_pass(waiting)
        if waiting:
            backend.pause(delay)
            delay = min(delay * 1.5, max_delay)  # a stat of each result file: cheap, the tail stays short


def record_lost(entry: Entry | None, failure: JobFailure) -> None:
    """A job whose task died without a word: its failure becomes its entry's error (unless the
    task wrote an outcome after all), so status, retry and the cache tool see it."""
    if entry is not None and entry.file_status() is None:
        entry.write_error(failure, "")


class EntryJob:
    """A job-like view of a computation that ran here or that another process runs: done when
    its outcome is in the cache."""

    def __init__(self, entry: Entry, ref: tp.Any = None) -> None:
        self.entry = entry
        self.ref = ref  # its jobref, if submitted: the id and cancel(); the result is the entry's
        self.job_id = ref.job_id if ref is not None and ref.job_id else "inline" if entry.file_status() is not None else "claimed"

    def done(self, force_check: bool = False) -> bool:
        reconcile_owned()  # polled by the process that submitted it: its launches need it
        return read_status(self.entry)[0] != "running"

    @property
    def state(self) -> str:
        return {"completed": "COMPLETED", "failed": "FAILED", "running": "RUNNING"}.get(read_status(self.entry)[0], "UNKNOWN")

    def result(self) -> tp.Any:
        status, failure = wait_for([self.entry])[0]
        if status == "completed":
            return self.entry.load_result()
        raise failure or self.entry.load_error()

    def cancel(self, check: bool = True) -> None:
        if self.ref is not None and self.ref.is_alive():
            self.ref.cancel()
