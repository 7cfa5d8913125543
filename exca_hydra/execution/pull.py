"""Pull workers on Slurm (the pilot-job pattern), the collector side: a launch of N jobs submits
one array of W = min(N, array_parallelism) worker tasks; each worker claims jobs one by one
(execution/pull_worker.py) and writes each job's outcome in its own entry and in the pool.

Collection is per job: a ``PullHandle`` per unit (a job, or a few with jobs_per_task), ended when
its returns file exists. ``Pool.reconcile`` (one squeue call) reports the job a dead worker was
running (with Slurm's word from the worker's log), cancels the pending workers once every job is
claimed, and submits a follow-up array when jobs are left and no worker is: only the collect loop
of the launcher that owns the launch calls it (a status read asks ``jobref.PullJob``, which acts on nothing).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import time
import typing as tp
from pathlib import Path

from ..cache import lease
from ..cache.host import hostname, start_time
from ..cache.store import Entry, JobFailure, atomic_write
from . import failures, slurm
from .backends import RESULT_GRACE_S, SubmititBackend, TaskLost, load_returns
from .jobref import PullJob
from .pull_worker import Lost, PullWorker, entry_of, read_claim
from .worker import Batch

if tp.TYPE_CHECKING:
    from .options import SlurmOptions

MAX_ROUNDS = 50  # follow-up arrays of one launch (each worker runs at least one job: progress)
logger = logging.getLogger(__name__)
QUEUE_EVERY_S = 1.5  # at most one squeue call per pool and process in this time
DEFAULT_PARALLELISM = 256


class Pool:
    """The pool folder of one launch, as a collector (or any process reading a status) sees it."""

    def __init__(self, folder: Path, backend: SubmititBackend | None = None) -> None:
        self.folder = Path(folder)
        self.backend = backend
        self._state: dict[str, tp.Any] | None = None
        self.asked = 0.0
        self.states: dict[str, str] = {}  # worker task id -> squeue state
        self.dead_since: dict[int, float] = {}
        self.cancelled: set[int] = set()

    @property
    def state(self) -> dict[str, tp.Any]:
        if self._state is None:
            with (self.folder / "pool.pkl").open("rb") as f:
                self._state = pickle.load(f)
        return self._state

    def returned(self, unit: int) -> bool:
        return (self.folder / "returns" / f"{unit}.pkl").exists()

    def rounds(self) -> list[dict[str, tp.Any] | None]:
        out: list[dict[str, tp.Any] | None] = []
        for k in range(MAX_ROUNDS + 1):
            path = self.folder / "rounds" / f"{k}.json"
            try:
                out.append(json.loads(path.read_text("utf8")))
            except FileNotFoundError:
                break
            except (OSError, ValueError):
                out.append(None)  # being submitted
        return out

    # ----- submission -----
    def submit_round(self, k: int, workers: int) -> bool:
        """Submit round k (W workers) unless another process did: O_EXCL on rounds/<k>.json."""
        path = self.folder / "rounds" / f"{k}.json"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            return False
        state = self.state
        backend = self.backend or SubmititBackend(**state["backend"])
        calls = [PullWorker(state["batch_path"], str(self.folder), state["units"], rank, workers, k, state["import_path"],
                            state["max_requeues"]) for rank in range(workers)]  # fmt: skip
        jobs: list[tp.Any] = []
        size = max(1, backend.max_array_size or slurm.max_array_size())
        for start in range(0, len(calls), size):
            with backend.executor.batch():
                jobs.extend(backend.executor.submit(call) for call in calls[start : start + size])
        ids = [str(job.job_id) for job in jobs]
        _publish(path, json.dumps({"arrays": sorted({i.split("_")[0] for i in ids}), "tasks": ids}).encode())
        return True

    # ----- Slurm's view -----
    def _ask(self, rounds: tp.Sequence[dict[str, tp.Any]]) -> bool:
        view = slurm.queue_view(t for r in rounds for t in r["tasks"])
        if view is None:
            return False  # no answer: decide nothing
        self.states = {task: state for task, (state, _) in view.items()}
        self.asked = time.time()
        return True

    def live(self, task_id: str) -> bool:
        return self.states.get(task_id, "") in slurm._SLURM_UNFINISHED

    # ----- reconciliation -----
    def reconcile(self, units: tp.Iterable[int] | None = None, force: bool = False) -> None:
        """Lost jobs, follow-ups, pending workers to cancel; at most once per QUEUE_EVERY_S."""
        if not force and time.time() - self.asked < QUEUE_EVERY_S:
            return
        rounds = self.rounds()
        if not rounds or any(r is None for r in rounds) or not self._ask(rounds):  # type: ignore[arg-type]
            return
        now = time.time()
        unclaimed, claimed_by = [], set()
        for unit in range(self.state["units"]) if units is None else units:
            if self.returned(unit):
                continue
            claim = read_claim(self.folder, unit)
            if claim is None:
                unclaimed.append(unit)
                continue
            if not claim:  # being written, or left empty by a worker that died writing it
                if lease.expired(self.folder / "claims" / str(unit)):
                    lease.move_aside(self.folder / "claims" / str(unit))
                    logger.warning("pull job %d of %s: an empty claim older than %.0f s was removed", unit, self.folder, lease.LEASE_S)
                continue
            claimed_by.add(claim["task"])
            if self.live(claim["task"]) or self.returned(unit):
                self.dead_since.pop(unit, None)
                continue
            if now - self.dead_since.setdefault(unit, now) >= RESULT_GRACE_S:  # a shared FS shows files late
                self.lose(unit, self._worker_failure(claim))
        tasks = [t for r in rounds for t in r["tasks"]]  # type: ignore[index]
        if unclaimed and not any(self.live(t) for t in tasks):
            last = len(rounds) - 1
            if not (self.folder / "rounds" / f"{last}.took").exists():  # its workers failed to start
                failure = self._worker_failure({"task": rounds[last]["tasks"][0], "stderr": self._log(rounds[last]["tasks"][0])},  # type: ignore[index]
                                               "ended without taking any job")  # fmt: skip
                for unit in unclaimed:
                    self.lose(unit, failure)
            elif len(rounds) >= MAX_ROUNDS:
                for unit in unclaimed:
                    self.lose(unit, failures.never_taken(MAX_ROUNDS, self.folder))
            else:
                self.submit_round(len(rounds), min(self.state["workers"], len(unclaimed)))
        elif not unclaimed and units is None:
            self._cancel_pending(rounds, claimed_by)

    def _log(self, task: str) -> str:
        import submitit

        return str(submitit.core.utils.JobPaths(self.state["backend"]["folder"], job_id=task, task_id=0).stderr)

    def _worker_failure(self, claim: dict[str, tp.Any], what: str = "") -> JobFailure:
        task = claim["task"]
        return failures.pull_worker_lost(task, self.states.get(task) or "ended", claim.get("stderr", "?"), what)

    def lose(self, unit: int, failure: JobFailure) -> None:
        if self.returned(unit):
            return
        for folder in self.state["entries"][unit]:
            entry = None if folder is None else Entry(folder)
            if entry is not None and entry.file_status() is None:
                entry.write_error(failure, "")
        atomic_write(self.folder / "returns" / f"{unit}.pkl", pickle.dumps(Lost(failure)))

    def _cancel_pending(self, rounds: tp.Sequence[tp.Any], claimed_by: set[str]) -> None:
        """Every job is claimed: workers still pending have nothing to do (a requeued worker,
        pending again, holds its claim and is kept)."""
        ids = [t for k, r in enumerate(rounds) if k not in self.cancelled for t in r["tasks"]
               if self.states.get(t) == "PENDING" and t not in claimed_by]  # fmt: skip
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
        self.cancelled.update(range(len(rounds)))

    def running(self, unit: int) -> tuple[bool, str]:
        """(running, state) of a unit, for a status read by any process."""
        if self.returned(unit):
            return False, "COMPLETED"
        claim = read_claim(self.folder, unit)
        if claim:
            state = self.states.get(claim["task"], "RUNNING")
            return True, state
        return True, "PENDING"


class PullHandle:
    def __init__(self, pool: Pool, unit: int) -> None:
        self.pool = pool
        self.unit = unit

    @property
    def job_id(self) -> str:
        """The worker running this unit, else the last array (its only task if it has one)."""
        claim = read_claim(self.pool.folder, self.unit)
        if claim:
            return str(claim["task"])
        rounds = [r for r in self.pool.rounds() if r]
        if not rounds:
            return "?"
        return str(rounds[-1]["tasks"][0] if len(rounds[-1]["tasks"]) == 1 else rounds[-1]["arrays"][0])

    def returns(self) -> list[tp.Any]:
        values = load_returns(self.pool.folder / "returns" / f"{self.unit}.pkl")
        if isinstance(values, Lost):
            raise TaskLost(values.failure)
        return values  # type: ignore[no-any-return]

    def ref(self) -> dict[str, tp.Any]:
        """A placeholder until a worker takes the job and writes its own: written after sbatch
        only where no worker has been faster (``Entry.write_job``)."""
        me = os.getpid()
        return PullJob(folder=str(self.pool.folder), unit=self.unit, owner_host=hostname(), owner_pid=me, owner_start=start_time(me)).dump()


class PullBackend:
    """W array tasks that pull jobs; one handle per unit of jobs (the engine collects per job)."""

    def __init__(self, backend: SubmititBackend, backend_args: dict[str, tp.Any]) -> None:
        self.backend = backend
        self.backend_args = backend_args
        self.pool: Pool | None = None

    @property
    def executor(self) -> tp.Any:
        return self.backend.executor

    def submit(self, batch: Batch, tasks: tp.Sequence[tp.Sequence[int]]) -> list[PullHandle]:
        path = self.backend.write_batch(batch)
        folder = path.with_suffix(".pool")
        for name in ("claims", "returns", "workers", "logs", "rounds"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        entries = [[entry_of(batch, i) for i in task] for task in tasks]
        options = self.backend_args["slurm_options"]
        workers = min(len(tasks), options.slurm_array_parallelism or DEFAULT_PARALLELISM)
        state = {
            "backend": self.backend_args, "batch_path": str(path), "import_path": self.backend.import_path,
            "units": len(tasks), "workers": workers, "max_requeues": options.slurm_max_num_timeout,
            "entries": [[None if e is None else str(e.folder) for e in unit] for unit in entries],
        }  # fmt: skip
        _publish(folder / "pool.pkl", pickle.dumps(state))
        _publish(folder / "units.json", json.dumps([list(t) for t in tasks]).encode())
        self.pool = OWNED[str(folder)] = Pool(folder, self.backend)
        self.pool._state = state
        if tasks:
            self.pool.submit_round(0, workers)
        return [PullHandle(self.pool, unit) for unit in range(len(tasks))]

    def ended(self, handles: tp.Sequence[PullHandle]) -> list[bool]:  # type: ignore[override]
        if self.pool is not None:
            self.pool.reconcile()
        return [handle.pool.returned(handle.unit) for handle in handles]

    def pause(self, delay: float) -> None:
        time.sleep(delay)


OWNED: dict[str, Pool] = {}  # the pools of the launches this process made: it alone acts on them


def reconcile_owned() -> None:
    """For a process waiting on its own launches (the Python API's job_array, then a call or a
    status wait): lost jobs, follow-ups and cancels of the pools it submitted, as its launcher."""
    for folder, pool in list(OWNED.items()):
        try:
            if all(pool.returned(unit) for unit in range(pool.state["units"])):
                del OWNED[folder]
                continue
            pool.reconcile()
        except OSError:  # its folder was removed: nothing left to act on
            OWNED.pop(folder, None)


def _publish(path: Path, data: bytes) -> None:
    """Whole or absent for the workers that read it (a rename), without atomic_write's fsync: the
    pool lives as long as its launch, and a launch does not survive a crash of its host anyway."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def slurm_backend(cluster: str | None, folder: Path, resources: tp.Any, slurm_options: SlurmOptions, **kwargs: tp.Any) -> tp.Any:
    """A ``SubmititBackend``, wrapped in a ``PullBackend`` on Slurm unless jobs_per_task is set."""
    from .options import RESOURCE_FIELDS, Resources

    backend = SubmititBackend(cluster, folder, resources, slurm_options, **kwargs)
    if backend.cluster != "slurm" or slurm_options.slurm_jobs_per_task is not None:
        return backend
    args = {
        "cluster": "slurm", "folder": backend.folder,
        "resources": Resources(**{name: getattr(resources, name) for name in RESOURCE_FIELDS}),
        "slurm_options": slurm_options.model_copy(),
        **kwargs, "import_path": backend.import_path,
    }  # fmt: skip
    return PullBackend(backend, args)
