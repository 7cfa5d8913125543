"""The job side: what runs in the job's process (a forked child or a Slurm array task): rebuild
the job's config, run it through Hydra's ``run_job``, read or fill the cache.  Kept apart from the
launcher so that a Slurm task imports only what running a job needs."""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, open_dict, read_write

from .store import Entry

if tp.TYPE_CHECKING:
    from .launcher import Job


class CachedTask:
    """The task run inside ``run_job``: convert, compute (or read the cache), store."""

    def __init__(self, task_function: tp.Any, entry_folder: str | None) -> None:
        self.task_function = task_function
        self.entry_folder = entry_folder

    def __call__(self, cfg: DictConfig) -> tp.Any:
        model = getattr(self.task_function, "__exca_model__", None)
        if model is not None:
            from .app import to_model

            obj = to_model(cfg, model)
            function = self.task_function.__exca_function__
            compute = getattr(function, "__exca_method__", function)
        else:
            obj, compute = cfg, self.task_function
        return run_cached(compute, obj, self.entry_folder)


def run_cached(compute: tp.Callable[[tp.Any], tp.Any], obj: tp.Any, entry_folder: str | None) -> tp.Any:
    """The cached result of ``compute(obj)`` in ``entry_folder``, computed and stored if missing."""
    if entry_folder is None:
        return compute(obj)
    entry = Entry(entry_folder)
    if entry.has_result():
        return entry.load_result()
    from .executor import run_and_store

    run_and_store(compute, obj, entry_folder)
    return entry.load_result()


@dataclass
class Payload:
    """What every job of one launch shares; written once per array, not once per job."""

    hydra_context: tp.Any
    task_function: tp.Any
    singleton_state: tp.Any
    sources: list[tp.Any]  # per job: a compose.Recipe (its base config is pickled once) or a DictConfig
    entries: list[str | None]


def run_one(payload: Payload, index: int, job_id: str | None = None) -> JobReturn:
    source = payload.sources[index]
    if isinstance(source, DictConfig):
        cfg = source
        if job_id is not None:
            with read_write(cfg.hydra), open_dict(cfg):
                cfg.hydra.job.id = job_id
    else:  # rebuilt here, as FastComposer composed it in the sweep process
        cfg = source.build(job_id)
    return run_job(
        hydra_context=payload.hydra_context,
        task_function=CachedTask(payload.task_function, payload.entries[index]),
        config=cfg,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


_LOADED: dict[str, Payload] = {}


class SlurmJobCall:
    """The callable submitit pickles for each array task: the payload's path and the indices of
    the jobs this task runs (several when ``jobs_per_task`` packs short jobs), a few bytes."""

    def __init__(self, payload_path: str, indices: tp.Sequence[int], import_path: str | None = None) -> None:
        self.payload_path = payload_path
        self.indices = list(indices)
        self.import_path = import_path  # the launching script's folder (executor.script_dir)

    def __call__(self) -> list[JobReturn]:
        payload = _LOADED.get(self.payload_path)
        if payload is None:
            import cloudpickle

            from .executor import add_import_path

            add_import_path(self.import_path)  # the app's own modules, as in the launcher

            with open(self.payload_path, "rb") as f:
                payload = cloudpickle.load(f)
            Singleton.set_state(payload.singleton_state)
            setup_globals()
            _LOADED[self.payload_path] = payload
        import submitit

        job_id = submitit.JobEnvironment().job_id
        return [run_one(payload, index, job_id) for index in self.indices]

    def checkpoint(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        """Requeued on timeout or preemption; the model's ``checkpoint()`` runs first (jobs
        already finished by this task are read back from the cache)."""
        import submitit

        from .executor import checkpoint_running

        checkpoint_running()
        return submitit.helpers.DelayedSubmission(SlurmJobCall(self.payload_path, self.indices, self.import_path))


# ----- JobReturns of jobs that did not run here -----
class LazyReturn(JobReturn):
    """A ``JobReturn`` for a job that did not run here (cached, or killed): its ``cfg`` (the
    composed config) is rebuilt when first read, not kept for every job of the sweep."""

    def __init__(self, job: Job, **kwargs: tp.Any) -> None:
        super().__init__(overrides=job.overrides, **kwargs)
        self._job: Job | None = job

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


def cached_return(job: Job, status: str, why_missing: str = "mode=read-only") -> JobReturn:
    """The JobReturn of a job that did not run in this launch: its cached outcome."""
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)  # cfg: rebuilt if read
    assert job.entry is not None
    if status == "completed":
        ret.status = JobStatus.COMPLETED
        ret.return_value = job.entry.load_result()
    else:
        ret.status = JobStatus.FAILED
        ret.return_value = job.entry.load_error() if status == "failed" else RuntimeError(
            f"Job #{job.num} ({' '.join(job.overrides)}) is not computed ({why_missing})"
        )
    return ret


def failed_return(job: Job, error: BaseException) -> JobReturn:
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret
