"""The job side: what runs in a job's process (in-process, a forked child, a submitit task).

A launch writes one ``Batch`` (what all its jobs share, pickled once per array); each task
loads it and runs its jobs by index. A job's outcome goes into its cache entry: the result, or
the error with the task's own traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
import typing as tp
from pathlib import Path

from ..cache.store import Entry

_RUNNING: list[tp.Any] = []  # configs being computed in this process (for the checkpoint hook)


class Batch(tp.Protocol):
    """The jobs of one launch, as a job process sees them."""

    checkpointable: bool  # requeue on timeout/preemption after the configs' checkpoint() hooks

    def __len__(self) -> int: ...

    def setup(self) -> None:
        """Once per process, before its first job (e.g. restore Hydra's global state)."""

    def run(self, index: int, job_id: str) -> tp.Any:
        """Run job ``index`` and return what the launcher collects (its outcome is in its entry)."""


def run_and_store(function: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, entry: Entry) -> tp.Any:
    """Compute, then store the result (or the error) in the cache entry; return the result."""
    _RUNNING.append(obj)
    start = time.time()
    existed = entry.folder.is_dir()  # made with its configs before the job
    try:
        value = function(obj)
        if not _removed(entry, existed):
            entry.write_result(value, duration=time.time() - start)
        return value
    except (SystemExit, KeyboardInterrupt) as e:  # submitit's exit after a requeue; Ctrl-C or SIGTERM:
        # neither is the task's outcome, the job stays missing and runs again next time; its log
        # names it, so that a job that ended this way says how (a task's own sys.exit(5) included)
        sys.stderr.write(f"The job stopped: {type(e).__name__}({e.code!r})\n" if isinstance(e, SystemExit) else "The job stopped: KeyboardInterrupt\n")
        sys.stderr.flush()
        raise
    except BaseException as e:
        # from the task's own frame on: this function is not what the user wants to read
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        if not _removed(entry, existed):
            entry.write_error(e, "".join(traceback.format_exception(type(e), e, tb)), duration=time.time() - start)
        raise
    finally:
        _RUNNING.remove(obj)


def _removed(entry: Entry, existed: bool) -> bool:
    """An entry removed while its job ran (``exca-hydra clear``): nothing is stored, since writing
    would remake the folder without its configs: a result nobody could verify, list or clear."""
    if not existed or entry.folder.is_dir():
        return False
    sys.stderr.write(f"{entry.folder} was removed while this job ran (exca-hydra clear?): its outcome is not "
                     "stored; the next run computes it again\n")  # fmt: skip
    return True


def run_cached(function: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, entry: Entry | None) -> tp.Any:
    """The cached result of ``function(obj)``, computed and stored if missing."""
    if entry is None:
        return function(obj)
    if entry.has_result():
        return entry.load_result()
    return run_and_store(function, obj, entry)


def checkpoint_running() -> None:
    """Before a requeue (timeout, preemption): let each running config save its state through
    its ``checkpoint()`` method, if it has one; the requeued job starts over and can resume."""
    for obj in list(_RUNNING):
        hook = getattr(obj, "checkpoint", None)
        if callable(hook):
            hook()


_RELOCATED: list[str | None] = []  # the script's folder in a code snapshot, while submitting from it


@contextlib.contextmanager
def script_dir_as(path: str | None) -> tp.Iterator[None]:
    """Jobs submitted meanwhile import the script's modules from ``path`` (its copy)."""
    _RELOCATED.append(path)
    try:
        yield
    finally:
        _RELOCATED.pop()


def script_dir() -> str | None:
    """The folder of the script this process runs (``python app.py``). Python put it first on
    sys.path, so the app's own modules (``from models import Trainer``) import from there; a job
    process (``python -m submitit...``, started in the submission's cwd) needs it too. Inside
    ``script_dir_as`` (a code snapshot), its copy."""
    if _RELOCATED:
        return _RELOCATED[-1]
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


class MethodBatch:
    """Python API jobs: ``method(obj)`` for each config, stored in its entry."""

    def __init__(self, calls: tp.Sequence[tuple[tp.Callable[[tp.Any], tp.Any], tp.Any, Entry]]) -> None:
        self.calls = list(calls)
        self.checkpointable = any(callable(getattr(obj, "checkpoint", None)) for _, obj, _ in self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def setup(self) -> None:
        pass

    def run(self, index: int, job_id: str) -> None:
        function, obj, entry = self.calls[index]
        run_and_store(function, obj, entry)

    # The decorated method is not importable under its name (that name holds the caching
    # wrapper), so cloudpickle would copy it by value, with a private copy of its module's
    # globals: pickle its infra name and find it again through the class (by reference).
    def __getstate__(self) -> dict[str, tp.Any]:
        calls = []
        for function, obj, entry in self.calls:
            for name, (method, _) in getattr(type(obj), "__exca_infras__", {}).items():
                if method is function:
                    function = name  # type: ignore[assignment]
            calls.append((function, obj, str(entry.folder)))
        return {"import_path": ImportPath(script_dir()), "calls": calls, "checkpointable": self.checkpointable}

    def __setstate__(self, state: dict[str, tp.Any]) -> None:
        self.checkpointable = state["checkpointable"]
        self.calls = []
        for function, obj, folder in state["calls"]:
            if isinstance(function, str):
                function = type(obj).__exca_infras__[function][0]
            self.calls.append((function, obj, Entry(folder)))


_LOADED: dict[str, Batch] = {}


def load_batch(path: str, import_path: str | None) -> Batch:
    """A task's batch, loaded once per process (a task may run several of its jobs)."""
    batch = _LOADED.get(path)
    if batch is None:
        import cloudpickle

        from .private import check_private

        add_import_path(import_path)  # the app's own modules, as in the launching process
        check_private(Path(path), Path(path).parent)  # nobody else's pickle runs as us
        with open(path, "rb") as f:
            batch = cloudpickle.load(f)
        batch.setup()
        _LOADED[path] = batch
    return batch


class TaskCall:
    """The callable a submitit task runs: the batch's path and the indices of its jobs (several
    when ``jobs_per_task`` packs short jobs), a few bytes per task."""

    def __init__(self, batch_path: str, indices: tp.Sequence[int], import_path: str | None) -> None:
        self.batch_path = batch_path
        self.indices = list(indices)
        self.import_path = import_path  # the launching script's folder (script_dir)

    def __call__(self) -> list[tp.Any]:
        import submitit

        batch = load_batch(self.batch_path, self.import_path)
        job_id = str(submitit.JobEnvironment().job_id)
        return [batch.run(index, job_id) for index in self.indices]


class CheckpointableTaskCall(TaskCall):
    """Requeued on timeout or preemption (submitit's Checkpointable protocol), after the running
    config's ``checkpoint()`` saved its state. Without this method submitit requeues on preemption
    only and fails a timeout: a rerun from scratch would only time out again."""

    def checkpoint(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        import submitit

        checkpoint_running()
        return submitit.helpers.DelayedSubmission(type(self)(self.batch_path, self.indices, self.import_path))


def task_call(batch: Batch, batch_path: str, indices: tp.Sequence[int], import_path: str | None) -> TaskCall:
    cls = CheckpointableTaskCall if batch.checkpointable else TaskCall
    return cls(batch_path, indices, import_path)
