"""Forked local processes (``exca_local``): at most ``limit`` at once, no interpreter start-up,
and a crashed job only loses itself. A job's process dies with its launcher."""

from __future__ import annotations

import functools
import os
import pickle
import signal
import time
import typing as tp
from pathlib import Path

import cloudpickle

from . import failures
from .backends import TaskLost, load_returns
from .fork_job import JobSetup, Tail, fork_child, relay, stop_late, wait_any
from .jobref import ForkJob
from .worker import Batch


KILL_GRACE_S = 10.0  # after SIGTERM (the timeout), a job's process has this long before SIGKILL
RELAY_EVERY_S = 0.5  # how often the jobs' new output is shown


class ForkHandle:
    def __init__(self, backend: ForkBackend, position: int, indices: tp.Sequence[int]) -> None:
        self.backend = backend
        self.position = position
        self.indices = list(indices)
        self.job_id = backend.setup.job_id(self.indices[0]) if backend.setup.ids else f"local_{position}"
        self.pid = 0
        self.status: int | None = None  # os.wait status once ended
        self.started = 0.0
        self.stopped: list[float] = []  # when SIGTERM (timeout), then SIGKILL, were sent
        ids = [backend.setup.job_id(i) for i in self.indices] if backend.setup.ids else []
        paths = [p for job_id in ids for p in backend.setup.log_paths(job_id) or ()]
        self.tails = [Tail(p) for p in dict.fromkeys(paths)]

    def returns(self) -> list[tp.Any]:
        path = self.backend.folder / f"{self.position}.pkl"
        if path.exists():
            values = load_returns(path)
            path.unlink()
            return values  # type: ignore[no-any-return]
        if self.stopped:
            how = "SIGTERM" if len(self.stopped) == 1 else f"SIGTERM, then SIGKILL {self.backend.grace_s:g} s later"
            raise TaskLost(failures.timed_out(self.pid, self.backend.timeout_min or 0, how))
        status = self.status or 0
        if os.WIFSIGNALED(status):
            reason, interrupted = f"signal {os.WTERMSIG(status)}", os.WTERMSIG(status) in INTERRUPTS
        else:
            code = os.waitstatus_to_exitcode(status)
            reason, interrupted = f"exit code {code}", code == INTERRUPTED_EXIT
        if interrupted:  # Ctrl-C or SIGTERM: not the job's outcome, nothing is recorded
            raise TaskLost(failures.process_interrupted(self.pid, reason))
        raise TaskLost(failures.process_died(self.pid, reason))

    def ref(self) -> dict[str, tp.Any]:
        return ForkJob.of(self.pid, folder=str(self.backend.folder)).dump()  # type: ignore[no-any-return]


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_EXIT = 128 + signal.SIGINT  # a job process that stopped on Ctrl-C or SIGTERM


def _interrupt(signum: int, frame: tp.Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _die_with_parent() -> None:
    """A forked job must not outlive its launcher (Linux): its claim names the launcher, so a
    re-run would compute the same uid again beside an orphan."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ForkBackend:
    """``timeout_min``: a job still running then gets SIGTERM, and SIGKILL ``grace_s`` later;
    ``echo(text, is_stderr)``: shows the jobs' output, read from their log files (``setup.logs``)."""

    def __init__(
        self,
        folder: Path,
        limit: int | None = None,
        setup: JobSetup | None = None,
        timeout_min: float | None = None,
        echo: tp.Callable[[str, bool], None] | None = None,
        grace_s: float = KILL_GRACE_S,
    ) -> None:
        self.folder = Path(folder)
        self.limit = max(1, limit or os.cpu_count() or 1)
        self.setup = setup or JobSetup()
        self.timeout_min = timeout_min
        self.echo = echo if self.setup.logs is not None else None
        self.grace_s = grace_s
        self.batch: Batch | None = None
        self.pending: list[ForkHandle] = []
        self.running: dict[int, ForkHandle] = {}
        self.finished: list[ForkHandle] = []  # ended since their output was last shown

    def submit(self, batch: Batch, tasks: tp.Sequence[tp.Sequence[int]]) -> list[ForkHandle]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.batch = batch
        handles = [ForkHandle(self, position, task) for position, task in enumerate(tasks)]
        self.pending.extend(handles)
        self._start()
        return handles

    def _start(self) -> None:
        while self.pending and len(self.running) < self.limit:
            handle = self.pending.pop(0)
            pid = fork_child(functools.partial(self._child, handle, os.getpid()), INTERRUPTED_EXIT)
            handle.pid = pid
            handle.started = time.time()
            self.running[pid] = handle

    def _child(self, handle: ForkHandle, parent: int) -> None:
        """In the forked child: run the task, write its returns."""
        _die_with_parent()
        if os.getppid() != parent:
            os._exit(1)
        signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the task's cleanup runs
        assert self.batch is not None
        values = [self.batch.run(index, self.setup.enter(index)) for index in handle.indices]
        _write_returns(self.folder / f"{handle.position}.pkl", values)

    def _reap(self, block: bool) -> None:
        while self.running:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            if pid == 0:
                break  # (a return here skipped _start: a free slot waited for every running job)
            handle = self.running.pop(pid, None)
            if handle is not None:
                handle.status = status
                self.finished.append(handle)
            block = False
        self._start()

    def _stop_late(self) -> float | None:
        return stop_late(self.running, self.timeout_min, self.grace_s)

    def _relay(self) -> None:
        if self.echo is not None:
            relay([(h, False) for h in self.running.values()] + [(h, True) for h in self.finished], self.echo)
        self.finished.clear()

    def ended(self, handles: tp.Sequence[ForkHandle]) -> list[bool]:  # type: ignore[override]
        self._reap(block=False)
        self._stop_late()
        self._relay()
        return [handle.status is not None for handle in handles]

    def pause(self, delay: float) -> None:
        if not self.running:
            return
        due = self._stop_late()
        if due is None and self.echo is None:
            self._reap(block=True)  # returns as soon as a child ends: no polling delay
            return
        timeout = min(delay, RELAY_EVERY_S) if self.echo is not None else delay
        if due is not None:
            timeout = min(timeout, due - time.time())
        wait_any(list(self.running), timeout)  # returns as soon as a child ends, too
        self._reap(block=False)

    def cancel(self, grace_s: float = 10.0) -> None:
        """The launch was interrupted (Ctrl-C, which the children of a terminal get too): stop the
        running tasks (SIGTERM: interrupted, nothing recorded), SIGKILL after ``grace_s``, reap."""
        self.pending.clear()
        deadline = time.time() + grace_s
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in list(self.running):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            while self.running and (sig == signal.SIGKILL or time.time() < deadline):
                for pid in list(self.running):
                    try:
                        ended, status = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:  # reaped elsewhere
                        ended, status = pid, 0
                    if ended:
                        self.running.pop(pid).status = status
                if self.running:
                    time.sleep(0.05)


def _write_returns(path: Path, values: list[tp.Any]) -> None:
    try:
        data = pickle.dumps(values)
    except Exception:
        pass
    else:
        return _publish_returns(path, data)
    try:  # the task's own value must pickle as a cached result would; Hydra's config around it
        for value in values:  # may hold classes made at run time (hydra-zen's): those go by value
            pickle.dumps(getattr(value, "_return_value", value))
        data = cloudpickle.dumps(values)
    except Exception as e:  # e.g. an unpicklable return value
        data = pickle.dumps([RuntimeError(f"The job's return value cannot be pickled: {e}")] * len(values))
    _publish_returns(path, data)


def _publish_returns(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
