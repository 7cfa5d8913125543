"""The Hydra job side: what a job process runs (a forked child or a Slurm array task): rebuild
the job's config, run it through Hydra's ``run_job``, read or fill the cache. Also the
``JobReturn`` of a job that did not run here (cached, or lost)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import typing as tp

import hydra
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, open_dict, read_write

from ...cache.store import RESULT, CacheError, Entry
from ...execution import engine
from ...execution.worker import run_cached
from .convert import to_model
from .jobs import HydraJob
from .task_info import task_info


class CachedTask:
    """The task run inside ``run_job``: convert, compute (or read the cache), store."""

    def __init__(self, task_function: tp.Any, entry_folder: str | None, load: bool = True) -> None:
        self.task_function = task_function
        self.entry_folder = entry_folder
        self.load = load  # False: a stored result stays in its entry (the launcher reads it lazily)

    def __call__(self, cfg: DictConfig) -> tp.Any:
        if not self.load and self.entry_folder is not None and Entry(self.entry_folder).has_result():
            return None  # replaced by a LazyReturn of the entry
        info = task_info(self.task_function)
        if info is not None:
            obj = to_model(cfg, info.model)
            compute = info.method or info.function
        else:
            obj, compute = cfg, self.task_function
        return run_cached(compute, obj, None if self.entry_folder is None else Entry(self.entry_folder))


class HydraBatch:
    """What every job of one launch shares; written once per array, not once per job."""

    def __init__(self, hydra_context: tp.Any, task_function: tp.Any, jobs: tp.Sequence[HydraJob]) -> None:
        # a model with a checkpoint() hook is requeued on timeout or preemption, then resumes
        info = task_info(task_function)
        self.checkpointable = info is not None and callable(getattr(info.model, "checkpoint", None))
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.singleton_state = Singleton.get_state()
        self.sources = [job.portable() for job in jobs]  # a Recipe pickles its shared base once
        self.entries = [str(job.entry.folder) if job.entry else None for job in jobs]
        self.shown = [job.shown_overrides for job in jobs]  # (secrets as ***) for a failure's first line
        self.sweep_dir: str | None = None  # set when the jobs start elsewhere (a code snapshot)
        self.load = True  # False: cached jobs read back in the launcher, their results left unloaded

    def __len__(self) -> int:
        return len(self.sources)

    def setup(self) -> None:
        Singleton.set_state(self.singleton_state)
        setup_globals()

    def run(self, index: int, job_id: str) -> JobReturn:
        source = self.sources[index]
        if isinstance(source, DictConfig):
            cfg = source
            with read_write(cfg.hydra), open_dict(cfg):
                cfg.hydra.job.id = job_id
        else:  # rebuilt here, as FastComposer composed it in the sweep process
            cfg = source.build(job_id)
        if self.sweep_dir is not None:
            with read_write(cfg.hydra), open_dict(cfg):
                cfg.hydra.sweep.dir = self.sweep_dir
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=CachedTask(self.task_function, self.entries[index], self.load),
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED and isinstance(ret._return_value, BaseException):
            shown = getattr(self, "shown", None)
            what = f"Job {job_id} (#{cfg.hydra.job.num}: {shown[index] if shown else '(overrides not shown)'})"
            ret.task_traceback = _report_failure(ret._return_value, what)  # type: ignore[attr-defined]
        folder = self.entries[index]
        if ret.status == JobStatus.COMPLETED and folder is not None and Entry(folder).has_result():
            return LazyReturn.stored(ret, Entry(folder))  # the launcher loads the value when read
        return ret


def _report_failure(error: BaseException, what: str) -> str:
    """The task's traceback (its own frames, from the first one outside Hydra and this library),
    written where the job's output goes and to the job's log file; returned for the launcher,
    which gets the exception without its frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(error), error, tb or error.__traceback__))
    sys.stderr.write(f"{what} failed:\n{text}")
    sys.stderr.flush()
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, "%s failed:\n%s", (what, text.rstrip()), None)
    for handler in logging.getLogger().handlers:  # and Hydra's job log file (<job dir>/<job name>.log)
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    return text


# Hydra's frames and this library's (run_job, the cached call) come before the task's
_INTERNAL = tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in (hydra.__file__ or "", os.path.dirname(__file__)))


def job_traceback(job: HydraJob) -> str:
    """A failed job's traceback, as the job recorded it: in its cache entry, or on its return."""
    text = job.entry.error_text() if job.entry is not None else ""
    return (text or getattr(job.result, "task_traceback", "") or "").rstrip()


# ----- JobReturns that keep neither their config nor their result -----
class LazyReturn(JobReturn):
    """A ``JobReturn`` whose ``cfg`` (of a job that did not run here: cached, or killed) is
    rebuilt when first read, and whose value, for a completed job with a cache entry, stays in
    that entry: loaded each time it is read and not kept, so the launcher holds at most one result
    at a time. A value that cannot be loaded (a truncated file) makes the job failed, with the
    error naming the file."""

    def __init__(self, job: HydraJob | None = None, stored: Entry | None = None, **kwargs: tp.Any) -> None:
        if job is not None:
            kwargs["overrides"] = job.overrides
        super().__init__(**kwargs)
        self._job: HydraJob | None = job
        self._stored = stored  # after the dataclass' __init__, which sets _return_value

    @classmethod
    def stored(cls, ret: JobReturn, entry: Entry) -> LazyReturn:
        """A completed job's return, its value left in its cache entry (not sent back)."""
        fields = ("overrides", "cfg", "hydra_cfg", "working_dir", "task_name", "status")
        return cls(stored=entry, **{name: getattr(ret, name) for name in fields})

    @property  # type: ignore[override]
    def cfg(self) -> DictConfig | None:
        job = self.__dict__.get("_job")
        if job is not None:
            self._cfg = job.config
            self._job = None
        return self.__dict__.get("_cfg")

    @cfg.setter
    def cfg(self, value: DictConfig | None) -> None:
        self._cfg = value
        self._job = None

    @property  # type: ignore[override]
    def _return_value(self) -> tp.Any:
        entry = self.__dict__.get("_stored")
        if entry is None:
            return self.__dict__.get("_value")
        try:
            return _load(entry)
        except Exception as e:  # the job failed after all: its error names the file
            self.status = JobStatus.FAILED
            self._return_value = e
            return e

    @_return_value.setter
    def _return_value(self, value: tp.Any) -> None:
        self.__dict__["_value"] = value
        self.__dict__["_stored"] = None

    @property  # type: ignore[override]
    def return_value(self) -> tp.Any:
        value = self._return_value  # loaded here (a failure to load makes the job failed)
        return value if self.status == JobStatus.COMPLETED else JobReturn.return_value.fget(self)  # type: ignore[attr-defined]

    @return_value.setter
    def return_value(self, value: tp.Any) -> None:
        self._return_value = value

    def __repr__(self) -> str:  # without loading the value
        entry = self.__dict__.get("_stored")
        where = f"in {entry.folder}" if entry is not None else repr(self.__dict__.get("_value"))
        return f"LazyReturn(overrides={self.overrides!r}, status={self.status}, value {where})"

    def __getstate__(self) -> dict[str, tp.Any]:
        _ = self.cfg
        return self.__dict__


def _load(entry: Entry) -> tp.Any:
    try:
        return entry.load_result()
    except FileNotFoundError:  # gone since the plan: e.g. being recomputed (mode=force) by another process
        status, failure = engine.wait_for([entry])[0]
        if status == "completed":
            return entry.load_result()
        if status == "failed":
            raise failure or entry.load_error() from None
        raise CacheError(f"Cached result {entry.path(RESULT)} was removed") from None


def cached_return(job: HydraJob, why_missing: str = "mode=read-only") -> JobReturn:
    """The JobReturn of a job that did not run in this launch: its cached outcome (a result is
    loaded when read)."""
    assert job.entry is not None and job.step is not None
    status = job.step.status
    ret = LazyReturn(job, stored=job.entry if status == "completed" else None, hydra_cfg=None, working_dir=None, task_name=None)
    if status == "completed":
        ret.status = JobStatus.COMPLETED
    elif status == "failed":
        ret.status = JobStatus.FAILED
        ret.return_value = job.step.failure or job.entry.load_error()
    else:
        ret.status = JobStatus.FAILED
        ret.return_value = RuntimeError(f"Job #{job.num} ({' '.join(job.overrides)}) is not computed ({why_missing})")
    return ret


def failed_return(job: HydraJob, error: BaseException) -> JobReturn:
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret
