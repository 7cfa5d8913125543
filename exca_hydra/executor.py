"""The executor layer: run a computation in this process or through submitit, store its outcome.

One interface for every backend: ``submit_array(executor, calls)`` sends a list of calls as one
submitit batch (one Slurm array per ``MaxArraySize`` chunk); ``executor=None`` runs them here.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
import traceback
import typing as tp

from .store import Entry, JobFailure, Status, pid_alive

if tp.TYPE_CHECKING:
    import submitit

logger = logging.getLogger(__name__)

Cluster = tp.Literal[None, "auto", "local", "slurm", "debug"]
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


def run_and_store(function: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, folder: str) -> None:
    """Job side: compute, then store the result (or the error) in the cache entry."""
    entry = Entry(folder)
    _RUNNING.append(obj)
    start = time.time()
    try:
        value = function(obj)
        entry.write_result(value, duration=time.time() - start)
    except SystemExit:  # e.g. submitit's exit after requeuing the job: not the task's failure
        raise
    except BaseException as e:
        # from the task's own frame on: this function is not what the user wants to read
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        entry.write_error(e, "".join(traceback.format_exception(type(e), e, tb)), duration=time.time() - start)
        raise
    finally:
        _RUNNING.remove(obj)


_RUNNING: list[tp.Any] = []  # configs being computed in this process (for the checkpoint hook)


def checkpoint_running() -> None:
    """Before a requeue (timeout, preemption): let each running config save its state through
    its ``checkpoint()`` method, if it has one; the requeued job starts over and can resume."""
    for obj in list(_RUNNING):
        hook = getattr(obj, "checkpoint", None)
        if callable(hook):
            hook()


def script_dir() -> str | None:
    """The folder of the script this process runs (``python app.py``). Python put it first on
    sys.path, so the app's own modules (``from models import Trainer``) import from there; a job
    process (``python -m submitit...``, started in the submission's cwd) needs it too."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if file is None or getattr(main, "__spec__", None) is not None:  # python -m, a notebook
        return None
    return os.path.dirname(os.path.abspath(file))


def add_import_path(path: str | None) -> None:
    if path and path not in sys.path:
        sys.path.insert(0, path)


class ImportPath:
    """Unpickled before what follows it in a pickle: puts the launching script's folder on the
    job's sys.path, so that the config's classes from the app's own modules can be unpickled."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (add_import_path, (self.path,))


class StoreCall:
    """The callable submitted for one config. Without a ``checkpoint`` method submitit requeues
    it (from scratch) on preemption only, and fails it on timeout: a rerun would time out again."""

    def __init__(self, function: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, folder: str) -> None:
        self.function = function
        self.obj = obj
        self.folder = folder

    def __call__(self) -> None:
        run_and_store(self.function, self.obj, self.folder)

    # The decorated method is not importable under its name (that name holds the caching
    # wrapper), so cloudpickle would copy it by value, with a private copy of its module's
    # globals: pickle its infra name and find it again through the class (by reference).
    def __getstate__(self) -> dict[str, tp.Any]:
        state = {"import_path": ImportPath(script_dir()), **self.__dict__}  # first: before obj
        for name, (method, _) in getattr(type(self.obj), "__exca_infras__", {}).items():
            if method is self.function:
                state["function"] = name
        return state

    def __setstate__(self, state: dict[str, tp.Any]) -> None:
        state.pop("import_path", None)
        self.__dict__.update(state)
        if isinstance(self.function, str):
            self.function = type(self.obj).__exca_infras__[self.function][0]


def store_call(function: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, folder: str) -> StoreCall:
    """A checkpointable call when the config has a ``checkpoint()`` method, else a plain one."""
    cls = CheckpointableStoreCall if callable(getattr(obj, "checkpoint", None)) else StoreCall
    return cls(function, obj, folder)


class CheckpointableStoreCall(StoreCall):
    """Requeued on timeout or preemption (submitit's Checkpointable protocol: a ``checkpoint``
    method), after the config's ``checkpoint()`` saved its state."""

    def checkpoint(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        import submitit

        checkpoint_running()
        return submitit.helpers.DelayedSubmission(self)


class InlineJob:
    """A computation that already ran in this process (cluster=None)."""

    job_id = "inline"

    def __init__(self, entry: Entry) -> None:
        self.entry = entry

    def done(self, force_check: bool = False) -> bool:
        return True

    @property
    def state(self) -> str:
        return "COMPLETED" if self.entry.has_result() else "FAILED"

    def result(self) -> tp.Any:
        if self.entry.has_result():
            return self.entry.load_result()
        raise self.entry.load_error()

    def cancel(self, check: bool = True) -> None:
        pass


class EntryWaiter:
    """A computation another process claimed: done when its outcome is in the cache."""

    job_id = "claimed"

    def __init__(self, entry: Entry) -> None:
        self.entry = entry

    def done(self, force_check: bool = False) -> bool:
        return entry_status(self.entry) != "running"

    def result(self) -> tp.Any:
        delay = 0.1
        while not self.done():
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        return InlineJob(self.entry).result()

    def cancel(self, check: bool = True) -> None:
        pass


Job = tp.Union[InlineJob, EntryWaiter, "submitit.Job[tp.Any]"]


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """The cluster's MaxArraySize: array indices go from 0 to MaxArraySize - 1, so a job array
    (submitit numbers tasks from 0) holds at most MaxArraySize tasks."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize":
            return int(value.strip())
    return DEFAULT_MAX_ARRAY_SIZE


def chunk_size(executor: tp.Any) -> int:
    return max(1, max_array_size()) if _cluster_name(executor) == "slurm" else 1 << 30


def _cluster_name(executor: tp.Any) -> str:
    name = getattr(executor, "cluster", None)  # AutoExecutor
    if name is None:
        name = type(executor).__name__.replace("Executor", "").lower()
    return str(name)


def submit_array(
    executor: "submitit.Executor | None",
    calls: tp.Sequence[tuple[tp.Callable[..., tp.Any], tuple[tp.Any, ...]]],
) -> list[tp.Any]:
    """Submit every call as one batch per array chunk (non-blocking); return the jobs in order."""
    if executor is None:
        raise ValueError("submit_array needs a submitit executor")
    jobs: list[tp.Any] = []
    size = chunk_size(executor)
    for start in range(0, len(calls), size):
        with executor.batch():
            chunk = [executor.submit(fn, *args) for fn, args in calls[start : start + size]]
        jobs.extend(chunk)
    return jobs


def job_ref(job: tp.Any) -> dict[str, tp.Any]:
    return {
        "backend": type(job).__name__,
        "job_id": str(job.job_id),
        "folder": str(job.paths.folder),
        "stderr": str(job.paths.stderr),
    }


def job_from_ref(ref: dict[str, tp.Any]) -> tp.Any:
    import submitit

    if ref["backend"] == "SlurmJob":
        return submitit.SlurmJob(ref["folder"], ref["job_id"])
    if ref["backend"] == "LocalJob":
        from submitit.local.local import LocalJob

        return LocalJob(ref["folder"], ref["job_id"])
    if ref["backend"] == "DebugJob":
        return None
    raise ValueError(f"Unknown job backend in job reference: {ref}")


# slurmctld's states of a job that has not ended (a requeued job is PENDING again)
_SLURM_UNFINISHED = frozenset(
    "PENDING RUNNING REQUEUED REQUEUE_HOLD REQUEUE_FED CONFIGURING COMPLETING SUSPENDED RESIZING "
    "SIGNALING STAGE_OUT STOPPED RESV_DEL_HOLD".split()
)


def jobs_done(jobs: tp.Sequence[tp.Any]) -> list[bool]:
    """submitit's ``done()``, corrected for requeues: sacct shows NODE_FAIL or PREEMPTED for a
    second or so after slurmctld has requeued the job (measured with Slurm 22.05.8). Jobs that
    ended without a result are confirmed with one squeue call, and watched again if requeued."""
    done = []
    unconfirmed = []
    for job in jobs:
        if type(job).__name__ == "LocalJob" and getattr(job, "_process", None) is None:
            # reattached by another process: submitit cannot poll it, its pid can be checked
            job_id = str(job.job_id)
            done.append(job.paths.result_pickle.exists() or not (job_id.isdigit() and pid_alive(int(job_id))))
            continue
        ended = job.done()
        done.append(ended)
        if ended and type(job).__name__ == "SlurmJob" and not job.paths.result_pickle.exists():
            unconfirmed.append(len(done) - 1)
    if unconfirmed:
        queue = slurm_queue(str(jobs[i].job_id) for i in unconfirmed)
        for i in unconfirmed:
            job_id = str(jobs[i].job_id)
            state = queue.get(job_id, ("", ""))[0]
            if state in _SLURM_UNFINISHED:
                watcher = jobs[i].watcher  # submitit caches finished states: forget this one
                getattr(watcher, "_finished", set()).discard(job_id)
                getattr(watcher, "_info_dict", {})[job_id] = {"State": state}
                done[i] = False
    return done


def job_done(job: tp.Any) -> bool:
    return jobs_done([job])[0]


def wait_done(job: tp.Any, max_delay: float = 5.0) -> None:
    delay = 0.2
    while not job_done(job):
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)


def _task_ids(squeue_id: str) -> list[str]:
    """'12_3' -> ['12_3']; a pending range '12_[4-6,9%2]' -> ['12_4', '12_5', '12_6', '12_9']."""
    if "[" not in squeue_id:
        return [squeue_id]
    array, spec = squeue_id.split("_[", 1)
    ids: list[str] = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        last, _, step = last.partition(":")
        ids.extend(f"{array}_{i}" for i in range(int(first), int(last or first) + 1, int(step or 1)))
    return ids


def slurm_queue(job_ids: tp.Iterable[str]) -> dict[str, tuple[str, str]]:
    """{task id: (state, reason)} of these jobs' arrays in slurmctld's memory (one squeue call)."""
    arrays = sorted({str(job_id).split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-j", ",".join(arrays), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    queue = {}
    for line in out.splitlines():
        squeue_id, state, reason = (line.split("|", 2) + ["", ""])[:3]
        for task_id in _task_ids(squeue_id.strip()):
            queue[task_id] = (state, reason)
    return queue


def ref_is_running(ref: dict[str, tp.Any], job: tp.Any = None) -> tuple[bool, str]:
    """(running, state) of a submitted job, asked of its backend."""
    backend = ref["backend"]
    if backend == "LocalJob":
        if job is not None and getattr(job, "_process", None) is not None:
            state = job.state
            return state == "RUNNING", state
        alive = ref["job_id"].isdigit() and pid_alive(int(ref["job_id"]))
        return alive, "RUNNING" if alive else "FINISHED"
    if backend == "SlurmJob":
        job = job if job is not None else job_from_ref(ref)
        done = job_done(job)
        return not done, str(job.state)
    return False, "UNKNOWN"


def slurm_says(log: tp.Any) -> str:
    """Slurm's own word in a job's log, e.g. '*** JOB 12 ON vm CANCELLED AT ... DUE TO NODE
    FAILURE ... ***' (sacct's Reason column is 'None' for most ended jobs)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode("utf8", errors="replace")
    except (OSError, TypeError):
        return ""
    lines = tail.splitlines()
    stepd = [line.strip() for line in lines if "slurmstepd" in line and "***" in line]
    # else srun's line on how the step died, e.g. 'srun: error: vm: task 0: User defined signal 2'
    srun = [line.strip() for line in lines if line.startswith("srun: error:") and ": task " in line]
    return (stepd or srun or [""])[-1]


# submitit's --signal=USR2@<signal_delay_s>: Slurm's warning before the time limit (or a preemption)
_EARLY_USR2 = (
    ". SIGUSR2 is the warning Slurm sends signal_delay_s before the time limit (or on preemption); it came"
    " before the job could handle it: is timeout_min shorter than signal_delay_s?"
)


def failure_from_job(ref: dict[str, tp.Any], state: str) -> JobFailure:
    said = slurm_says(ref.get("stderr"))
    why = _EARLY_USR2 if said.endswith("User defined signal 2") else ""
    return JobFailure(
        f"Job {ref['job_id']} ended with state {state} without a result or a Python error "
        f"(killed, out of time or memory?).{' Slurm: ' + said if said else ''}{why} Its log: {ref.get('stderr', '?')}"
    )


def entry_status(entry: Entry) -> Status:
    """Files first (one stat each); the backend is asked only about submitted, unfinished jobs."""
    status = entry.file_status()
    if status is not None:
        return status
    ref = entry.read_job()
    if ref is None:  # maybe another process is computing it right now
        return "not submitted" if entry.claim_is_stale() else "running"
    running, state = ref_is_running(ref)
    if running:
        return "running"
    status = entry.file_status()  # it may have finished in between
    if status is not None:
        return status
    entry.write_error(failure_from_job(ref, state), "")
    return "failed"
