"""Backends: where the tasks of a batch run. One interface (submitit's shape: submit returns
handles, a pass tells which ended, a handle gives its task's returns), swappable backends:

- ``InlineBackend``: in this process, at submission (``cluster=None``);
- ``ForkBackend`` (fork.py): forked local processes, at most ``limit`` at once (``exca_local``): no
  interpreter start-up, and a crashed job only loses itself;
- ``SubmititBackend``: submitit's executors (Slurm arrays, local subprocesses, debug); the batch
  is pickled once per launch, each task gets its path and its job indices.

Each handle gives the typed reference (``jobref``) that job.json records, so a later process can
tell a live job from a dead one without acting on it.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import typing as tp
from pathlib import Path

from ..cache.errors import CacheError
from ..cache.store import JobFailure
from ..cache.trust import check_trusted
from . import failures, jobref, slurm
from .options import Resources, SlurmOptions, submitit_parameters
from .private import check_private, jobs_root, make_private, private_umask
from .worker import Batch, script_dir, task_call

RESULT_GRACE_S = 10.0  # a shared file system can show a result file late (submitit waits 15 s per job)


class TaskLost(Exception):
    """A task ended without returning (killed, out of time or memory...): its failure."""

    def __init__(self, failure: JobFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def load_returns(path: Path) -> tp.Any:
    """What a task returned, from the file its process wrote; one that anyone else could have
    written (cache/trust.py) fails its task, never loads."""
    import pickle

    with path.open("rb") as f:
        try:
            check_trusted(f, path)
        except CacheError as e:
            raise TaskLost(JobFailure(str(e))) from e
        return pickle.load(f)


class Handle(tp.Protocol):
    job_id: str

    def returns(self) -> list[tp.Any]:
        """What the task's jobs returned, in order; raises TaskLost if it ended without."""

    def ref(self) -> dict[str, tp.Any] | None:
        """What job.json records to find the job again (None: nothing to find)."""


class Backend(tp.Protocol):
    def submit(self, batch: Batch, tasks: tp.Sequence[tp.Sequence[int]]) -> list[tp.Any]:
        """Start every task (job indices of the batch); non-blocking except in-process."""

    def ended(self, handles: tp.Sequence[tp.Any]) -> list[bool]:
        """Which tasks have ended, in one pass (one queue query at most)."""

    def pause(self, delay: float) -> None:
        """Wait before the next pass: sleep, or until a child process ends."""


# ----- in this process -----
class InlineHandle:
    job_id = "inline"

    def __init__(self, values: list[tp.Any], error: BaseException | None) -> None:
        self.values = values
        self.error = error

    def returns(self) -> list[tp.Any]:
        return self.values

    def ref(self) -> None:
        return None


class InlineBackend:
    """Runs each task at submission; a job's error stays in its entry (and in the handle)."""

    def submit(self, batch: Batch, tasks: tp.Sequence[tp.Sequence[int]]) -> list[InlineHandle]:
        handles = []
        for task in tasks:
            values, error = [], None
            for index in task:
                try:
                    values.append(batch.run(index, "inline"))
                except Exception as e:  # recorded in the entry by the job side
                    values.append(None)
                    error = e
            handles.append(InlineHandle(values, error))
        return handles

    def ended(self, handles: tp.Sequence[tp.Any]) -> list[bool]:
        return [True] * len(handles)

    def pause(self, delay: float) -> None:
        pass


# ----- submitit: Slurm arrays, local subprocesses, debug -----
class SubmititHandle:
    def __init__(self, job: tp.Any, root: Path | None = None) -> None:
        self.job = job  # a submitit.Job
        self.root = root  # the jobs' private folder: their results are loaded only from there

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def returns(self) -> list[tp.Any]:
        job = self.job
        if not job.paths.result_pickle.exists() and type(job).__name__ != "DebugJob":
            raise TaskLost(task_failure(job, "ended without a result (killed, out of time or memory?)"))
        if self.root is not None and type(job).__name__ != "DebugJob":
            try:
                check_private(job.paths.result_pickle, self.root)
            except CacheError as e:
                raise TaskLost(JobFailure(str(e))) from e
        try:
            return job.result()  # type: ignore[no-any-return]
        except Exception as e:
            raise TaskLost(task_failure(job, f"failed: {e}")) from e

    def ref(self) -> dict[str, tp.Any] | None:
        return None if type(self.job).__name__ == "DebugJob" else jobref.of_submitit(self.job)


task_failure = failures.submitit_job_lost  # its wording lives with the others


class SubmititBackend:
    def __init__(
        self,
        cluster: str | None,
        folder: Path,
        resources: Resources,
        slurm_options: SlurmOptions,
        name: str | None = None,
        max_array_size: int | None = None,
        import_path: str | None = None,
        extra: dict[str, tp.Any] | None = None,
    ) -> None:
        import submitit

        self.folder = Path(folder).absolute()
        make_private(jobs_root(self.folder))
        # the jobs load their pickle only from that private folder (execution/guard.py)
        # (-c, not -m: the job starts in a code snapshot, and -m would import from there first)
        guard = "-u -c " + shlex.quote("import sys; del sys.path[0]; from exca_hydra.execution.guard import main; main(sys.argv[1:])")
        executor = submitit.AutoExecutor(
            folder=self.folder, cluster=cluster, slurm_max_num_timeout=slurm_options.slurm_max_num_timeout,
            slurm_python=f"{slurm_options.slurm_python or shlex.quote(sys.executable)} {guard}",
            local_python=f"{shlex.quote(sys.executable)} {guard}",
        )
        parameters = submitit_parameters(resources, slurm_options, executor.cluster)
        if name is not None:
            parameters["name"] = name
        parameters.update(extra or {})
        executor.update_parameters(**parameters)
        self.executor = executor
        self.cluster = executor.cluster
        self.max_array_size = max_array_size
        self.import_path = import_path if import_path is not None else script_dir()
        self.no_result_since: dict[str, float] = {}

    def write_batch(self, batch: Batch) -> Path:
        """One pickle for the whole launch, beside the logs (their folder may be a %j template)."""
        import cloudpickle

        path = jobs_root(self.folder) / f"batch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{id(batch):x}.pkl"
        # it holds the configs, secrets in clear (the jobs need them): readable by its owner only
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            cloudpickle.dump(batch, f)
        return path

    def submit(self, batch: Batch, tasks: tp.Sequence[tp.Sequence[int]]) -> list[SubmititHandle]:
        size = self.max_array_size or (slurm.max_array_size() if self.cluster == "slurm" else len(tasks))
        jobs: list[tp.Any] = []
        with private_umask():  # submitit's folders and pickles, and what the jobs write
            path = self.write_batch(batch)
            for start in range(0, len(tasks), max(1, size)):  # one array per MaxArraySize tasks
                with self.executor.batch():
                    for task in tasks[start : start + size]:
                        jobs.append(self.executor.submit(task_call(batch, str(path), task, self.import_path)))
        return [SubmititHandle(job, jobs_root(self.folder)) for job in jobs]

    def ended(self, handles: tp.Sequence[SubmititHandle]) -> list[bool]:  # type: ignore[override]
        done = slurm.jobs_done([h.job for h in handles])  # at most one squeue call
        now = time.time()
        for i, handle in enumerate(handles):
            # a task that ended without a result file: a shared file system may show it late
            if done[i] and self.cluster == "slurm" and not handle.job.paths.result_pickle.exists():
                since = self.no_result_since.setdefault(handle.job_id, now)
                done[i] = now - since >= RESULT_GRACE_S
        return done

    def pause(self, delay: float) -> None:
        time.sleep(delay)
