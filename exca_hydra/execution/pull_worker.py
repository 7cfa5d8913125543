"""The worker side of pulling: each task of a pull array starts Python and loads the batch once,
then claims the next job nobody has claimed and runs it in a forked child, until nothing is left,
its Slurm time would not cover the longest job it has seen, or Slurm warned it (USR2).

The pool folder (one per launch, beside the batch pickle) holds:
``claims/<unit>`` (created with O_EXCL by the worker that runs the unit: task id, host, pid, log),
``returns/<unit>.pkl`` (what the unit's jobs returned, or a ``Lost`` failure),
``workers/<task id>.json`` (the unit a worker is running: a requeued worker resumes it first),
``logs/<unit>.out`` (the job's own stdout and stderr), ``drained-<round>`` (nothing left to claim).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

from ..cache import lease
from ..cache.store import Entry, JobFailure, atomic_write
from . import failures
from .fork_job import fork_child, redirect
from .jobref import SlurmJob
from .worker import Batch, checkpoint_running, load_batch

INTERRUPTED = 75  # the child's exit code after Slurm's USR2 and its config's checkpoint()
MARGIN_S = 10.0  # on top of 1.25 x the longest job seen, before the Slurm deadline


class Lost:
    """A unit's outcome when its process died before returning: its failure."""

    def __init__(self, failure: JobFailure) -> None:
        self.failure = failure


def entry_of(batch: tp.Any, index: int) -> Entry | None:
    """The cache entry of a batch's job (HydraBatch: folders; MethodBatch: calls)."""
    if hasattr(batch, "entries"):
        folder = batch.entries[index]
        return None if folder is None else Entry(folder)
    if hasattr(batch, "calls"):
        return batch.calls[index][2]  # type: ignore[no-any-return]
    return None


def write_pickle(path: Path, value: tp.Any) -> None:
    """cloudpickle, as submitit returns a task's values (the batch's classes may be by value)."""
    import cloudpickle

    try:
        data = cloudpickle.dumps(value)
    except Exception as e:  # e.g. an unpicklable return value
        data = pickle.dumps(Lost(failures.unpicklable_return(e)))
    atomic_write(path, data)


def try_claim(pool: Path, unit: int, info: dict[str, tp.Any]) -> bool:
    return lease.create(pool / "claims" / str(unit), json.dumps(info), 0o666)


def read_claim(pool: Path, unit: int) -> dict[str, tp.Any] | None:
    try:
        return json.loads((pool / "claims" / str(unit)).read_text("utf8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written


def time_left(job_id: str | None) -> float | None:
    """Seconds until this Slurm job's end: SLURM_JOB_END_TIME (Slurm >= 23.02), else one
    ``squeue -o %L`` call; None when unknown or unlimited."""
    end = os.environ.get("SLURM_JOB_END_TIME")
    if end and end.isdigit():
        return float(end) - time.time()
    if not job_id:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_duration(out.strip().splitlines()[0] if out.strip() else "")


def parse_duration(text: str) -> float | None:
    """Slurm's [days-]hours:minutes:seconds (or minutes:seconds); None for UNLIMITED/NOT_SET."""
    days, _, rest = text.rpartition("-") if "-" in text else ("", "", text)
    parts = rest.split(":")
    if not text or not all(p.isdigit() for p in parts) or (days and not days.isdigit()):
        return None
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


class PullWorker:
    """The callable of one task of a pull array (a few hundred bytes pickled per task)."""

    def __init__(self, batch_path: str, pool: str, units: int, rank: int, size: int, round_: int,
                 import_path: str | None, max_requeues: int) -> None:  # fmt: skip
        self.batch_path = batch_path
        self.pool = pool
        self.units = units
        self.rank = rank
        self.size = size
        self.round = round_
        self.import_path = import_path
        self.max_requeues = max_requeues

    def __call__(self) -> int:
        pool = Path(self.pool)
        if (pool / f"drained-{self.round}").exists():  # a late starter: nothing left, exit at once
            return 0
        import submitit

        env = submitit.JobEnvironment()
        task_id = str(env.job_id)
        stderr = str(env.paths.stderr)
        batch = load_batch(self.batch_path, self.import_path)
        run = _Run(self, batch, pool, task_id, stderr, env.paths.folder)
        return run.loop(time_left(os.environ.get("SLURM_JOB_ID")))


class _Run:
    def __init__(self, worker: PullWorker, batch: Batch, pool: Path, task_id: str, stderr: str, folder: Path) -> None:
        self.worker = worker
        self.batch = batch
        self.pool = pool
        self.task_id = task_id
        self.stderr = stderr
        self.folder = str(folder)
        self.stop = False
        self.child = 0
        self.state_path = pool / "workers" / f"{task_id}.json"

    def on_usr2(self, signum: int, frame: tp.Any) -> None:
        """Slurm's warning (time limit or preemption): claim nothing more; the running job's
        child gets it too (same process group) and checkpoints if it can."""
        print(f"exca-hydra worker {self.task_id}: SIGUSR2, claiming no more jobs", file=sys.stderr, flush=True)
        self.stop = True
        if self.child:
            try:
                os.kill(self.child, signal.SIGUSR2)
            except ProcessLookupError:
                pass

    def loop(self, left: float | None) -> int:
        deadline = None if left is None else time.time() + left
        signal.signal(signal.SIGUSR2, self.on_usr2)
        done, longest = 0, 0.0
        resumed = self._resumed()
        for unit in ([resumed] if resumed is not None else []) + self._order():
            if done and (self.stop or (deadline is not None and time.time() + 1.25 * longest + MARGIN_S > deadline)):
                return done  # the rest go to the others, or to a follow-up array
            if unit != resumed and not self._claim(unit):
                continue
            if not done:  # this array makes progress (else the collector stops following up)
                _touch(self.pool / "rounds" / f"{self.worker.round}.took")
            if (self.pool / "returns" / f"{unit}.pkl").exists():  # finished before a requeue
                continue
            start = time.time()
            self._run(unit)
            longest = max(longest, time.time() - start)
            done += 1
        _touch(self.pool / f"drained-{self.worker.round}")
        return done

    def _order(self) -> list[int]:
        """From this worker's own place in the list, around: workers start apart."""
        n, start = self.worker.units, (self.worker.rank * self.worker.units) // max(1, self.worker.size)
        return [(start + i) % n for i in range(n)]

    def _claim(self, unit: int) -> bool:
        info = {"task": self.task_id, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                "stderr": self.stderr, "folder": self.folder}  # fmt: skip
        return try_claim(self.pool, unit, info)

    def _resumed(self) -> int | None:
        """After a requeue: the unit this worker was running (its claim names this task)."""
        try:
            state = json.loads(self.state_path.read_text("utf8"))
        except (OSError, ValueError):
            return None
        unit = int(state["unit"])
        claim = read_claim(self.pool, unit)
        return unit if claim and claim.get("task") == self.task_id else None

    def _run(self, unit: int) -> None:
        indices = self._indices(unit)
        requeues = self._requeues(unit)
        atomic_write(self.state_path, json.dumps({"unit": unit, "requeues": requeues}).encode())
        log = self.pool / "logs" / f"{unit}.out"
        ref = SlurmJob(job_id=str(self.task_id), folder=str(self.folder), stderr=str(self.stderr), log=str(log), pool=str(self.pool)).dump()
        for index in indices:
            entry = entry_of(self.batch, index)
            if entry is not None:
                entry.write_job(ref)
        start = time.time()
        pid = fork_child(functools.partial(_child, self.batch, indices, self.pool / "returns" / f"{unit}.pkl", log, self.task_id))
        self.child = pid
        _, status = os.waitpid(pid, 0)
        self.child = 0
        code = os.waitstatus_to_exitcode(status)
        if code == INTERRUPTED and self.batch.checkpointable and requeues < self.worker.max_requeues:
            atomic_write(self.state_path, json.dumps({"unit": unit, "requeues": requeues + 1}).encode())
            self._requeue()
        returns = self.pool / "returns" / f"{unit}.pkl"
        if not returns.exists():  # the child died before returning: that unit's failure only
            why = "interrupted by Slurm's USR2 and requeued too many times" if code == INTERRUPTED else (
                f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")  # fmt: skip
            failure = failures.process_died(pid, why, task=str(self.task_id), log=str(log), worker_log=str(self.stderr))
            for index in indices:
                entry = entry_of(self.batch, index)
                if entry is not None and entry.file_status() is None:
                    entry.write_error(failure, "", duration=time.time() - start)
            write_pickle(returns, Lost(failure))
        self.state_path.unlink(missing_ok=True)

    def _indices(self, unit: int) -> list[int]:
        units = getattr(self, "_units", None)
        if units is None:
            with (self.pool / "units.json").open() as f:
                units = self._units = json.load(f)
        return list(units[unit])

    def _requeues(self, unit: int) -> int:
        try:
            state = json.loads(self.state_path.read_text("utf8"))
        except (OSError, ValueError):
            return 0
        return int(state.get("requeues", 0)) if state.get("unit") == unit else 0

    def _requeue(self) -> None:
        """As submitit does for a checkpointable job: requeue this task, then leave; the
        requeued task resumes the unit first."""
        job_id = os.environ.get("SLURM_JOB_ID", "")
        print(f"exca-hydra worker {self.task_id}: requeuing {job_id}", file=sys.stderr, flush=True)
        subprocess.run(["scontrol", "requeue", job_id], check=False)
        sys.exit(-1)


def _child(batch: Batch, indices: list[int], returns: Path, log: Path, job_id: str) -> None:
    """The forked child (fork_child): the job's own log, Slurm's USR2 -> checkpoint and leave,
    run, return."""
    redirect(log, log, append=False)

    def on_usr2(signum: int, frame: tp.Any) -> None:
        if batch.checkpointable:
            print("exca-hydra: SIGUSR2, checkpointing", file=sys.stderr, flush=True)
            checkpoint_running()
            os._exit(INTERRUPTED)
        print("exca-hydra: SIGUSR2 (no checkpoint() hook: the job goes on)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGUSR2, on_usr2)
    values: list[tp.Any] = []
    for index in indices:
        try:
            values.append(batch.run(index, job_id))
        except Exception as e:  # already in the job's entry (run_and_store)
            values.append(e)
    write_pickle(returns, values)


def _touch(path: Path) -> None:
    try:
        path.touch()
    except OSError:
        pass
