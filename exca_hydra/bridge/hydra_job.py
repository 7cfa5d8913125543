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

from ..cache.store import Entry
from ..execution.worker import run_cached
from .convert import to_model
from .jobs import HydraJob


class CachedTask:
    """The task run inside ``run_job``: convert, compute (or read the cache), store."""

    def __init__(self, task_function: tp.Any, entry_folder: str | None) -> None:
        self.task_function = task_function
        self.entry_folder = entry_folder

    def __call__(self, cfg: DictConfig) -> tp.Any:
        model = getattr(self.task_function, "__exca_model__", None)
        if model is not None:
            obj = to_model(cfg, model)
            function = self.task_function.__exca_function__
            compute = getattr(function, "__exca_method__", function)
        else:
            obj, compute = cfg, self.task_function
        return run_cached(compute, obj, None if self.entry_folder is None else Entry(self.entry_folder))


class HydraBatch:
    """What every job of one launch shares; written once per array, not once per job."""

    def __init__(self, hydra_context: tp.Any, task_function: tp.Any, jobs: tp.Sequence[HydraJob]) -> None:
        # a model with a checkpoint() hook is requeued on timeout or preemption, then resumes
        model = getattr(task_function, "__exca_model__", None)
        self.checkpointable = callable(getattr(model, "checkpoint", None))
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.singleton_state = Singleton.get_state()
        self.sources = [job.portable() for job in jobs]  # a Recipe pickles its shared base once
        self.entries = [str(job.entry.folder) if job.entry else None for job in jobs]
        self.sweep_dir: str | None = None  # set when the jobs start elsewhere (a code snapshot)

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
            task_function=CachedTask(self.task_function, self.entries[index]),
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED and isinstance(ret._return_value, BaseException):
            what = f"Job {job_id} (#{cfg.hydra.job.num}: {' '.join(ret.overrides or [])})"
            ret.task_traceback = _report_failure(ret._return_value, what)  # type: ignore[attr-defined]
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


# ----- JobReturns of jobs that did not run here -----
class LazyReturn(JobReturn):
    """A ``JobReturn`` for a job that did not run here (cached, or killed): its ``cfg`` (the
    composed config) is rebuilt when first read, not kept for every job of the sweep."""

    def __init__(self, job: HydraJob, **kwargs: tp.Any) -> None:
        super().__init__(overrides=job.overrides, **kwargs)
        self._job: HydraJob | None = job

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

    def __getstate__(self) -> dict[str, tp.Any]:
        _ = self.cfg
        return self.__dict__


def cached_return(job: HydraJob, why_missing: str = "mode=read-only") -> JobReturn:
    """The JobReturn of a job that did not run in this launch: its cached outcome."""
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)  # cfg: rebuilt if read
    assert job.entry is not None and job.step is not None
    status = job.step.status
    if status == "completed":
        ret.status = JobStatus.COMPLETED
        ret.return_value = job.entry.load_result()
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
