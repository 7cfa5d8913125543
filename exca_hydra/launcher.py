"""The launcher: compose -> validate every job -> uid -> submit (local processes or a Slurm array)
-> collect -> report.  The plugin classes in ``hydra_plugins`` only forward to ``launch``.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import time
import traceback
import typing as tp
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from . import app
from .store import Entry, JobFailure
from .uid import uid_config, uid_string

logger = logging.getLogger(__name__)


class LauncherParams(pydantic.BaseModel):
    """Every ``hydra.launcher`` key, validated: an unknown key fails before anything runs."""

    model_config = pydantic.ConfigDict(extra="forbid")
    folder: str | None = None  # cache root; None: the model's infra.folder, else no cache
    array_parallelism: int | None = None
    max_array_size: int | None = None
    jobs_per_task: int = 1  # several short jobs run one after the other in one array task
    # Slurm / submitit parameters, named as in hydra-submitit-launcher
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    timeout_min: int | None = None
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    tasks_per_node: int | None = 1
    mem_gb: float | None = None
    nodes: int | None = 1
    name: str | None = None
    stderr_to_stdout: bool = False
    partition: str | None = None
    qos: str | None = None
    comment: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    gres: str | None = None
    cpus_per_gpu: int | None = None
    gpus_per_task: int | None = None
    mem_per_gpu: str | None = None
    mem_per_cpu: str | None = None
    account: str | None = None
    signal_delay_s: int = 120
    max_num_timeout: int = 0
    additional_parameters: dict[str, tp.Any] = {}
    setup: list[str] | None = None

    def submitit_parameters(self) -> dict[str, tp.Any]:
        generic = ("timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name", "stderr_to_stdout")
        slurm = ("partition", "qos", "comment", "constraint", "exclude", "gres", "cpus_per_gpu",
                 "gpus_per_task", "mem_per_gpu", "mem_per_cpu", "account", "signal_delay_s",
                 "additional_parameters", "setup")  # fmt: skip
        out = {key: getattr(self, key) for key in generic if getattr(self, key) is not None}
        out.update({f"slurm_{key}": getattr(self, key) for key in slurm if getattr(self, key) not in (None, {})})
        out["slurm_array_parallelism"] = self.array_parallelism or 256
        return out


class LocalLauncherParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    folder: str | None = None
    array_parallelism: int | None = None


@dataclass
class Job:
    """One validated job of the sweep.  It keeps no composed config (~85 KB each): ``source``
    rebuilds it on demand (``compose.Recipe``: the shared base config + this job's override
    lines), unless Hydra's full compose made it (then the config itself, or a ``FullRecipe``)."""

    num: int
    overrides: list[str]
    source: tp.Any  # Recipe | FullRecipe | DictConfig
    obj: tp.Any
    entry: Entry | None = None
    uid: str | None = None
    result: JobReturn | None = field(default=None, repr=False)
    started: float = 0.0
    ended: float = 0.0

    @property
    def config(self) -> DictConfig:
        """The job's composed config (a new one each time, except for a kept full compose)."""
        return self.source if isinstance(self.source, DictConfig) else self.source.build()

    def portable(self) -> tp.Any:
        """What a job process rebuilds the config from: the recipe, or the config itself."""
        from .compose import Recipe

        return self.source if isinstance(self.source, (Recipe, DictConfig)) else self.source.build()


# ----- compose, validate, uid -----
def compose_job(launcher: tp.Any, overrides: tp.Sequence[str], num: int) -> tuple[DictConfig, tp.Any]:
    """Hydra's load_sweep_config + the launcher's ``hydra.job.id/num``, without recomposing what
    jobs share (see compose.py); and the recipe that rebuilds it (None: Hydra's full compose)."""
    from .compose import composer_for

    return composer_for(launcher.hydra_context.config_loader, launcher.config).compose_job(overrides, num)


def compose(launcher: tp.Any, overrides: tp.Sequence[str], num: int) -> DictConfig:
    return compose_job(launcher, overrides, num)[0]  # type: ignore[no-any-return]


def prepare(
    launcher: tp.Any, job_overrides: tp.Sequence[tp.Sequence[str]], initial_job_idx: int, keep_full: bool = True
) -> list[Job]:
    """Compose and validate every job; raise one error listing every invalid job.  A job keeps
    the recipe of its config, not the config; ``keep_full=False`` (a dry run) does not keep the
    configs made by Hydra's full compose either."""
    model = getattr(launcher.task_function, "__exca_model__", None)
    jobs, failures = [], []
    import gc

    from .compose import FullRecipe, HydraView, composer_for, task_container

    hydra_config = HydraConfig.instance()
    cfg = None
    try:
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            cfg, recipe = compose_job(launcher, overrides, num)
            # for ${hydra:...} in the task's values: what HydraConfig.set_config does, without its
            # masked copy of the whole hydra node (~2 ms a job); the resolver reads cfg.hydra itself
            OmegaConf.set_readonly(cfg.hydra, True)
            hydra_config.cfg = HydraView(cfg.hydra)  # type: ignore[assignment]
            obj, errors = app.convert(cfg, model, task_container)  # without copying the task part
            if errors:
                failures.append((num, filter_overrides(overrides), errors))
            else:
                if recipe is not None:
                    source: tp.Any = recipe
                elif keep_full:
                    source = cfg
                    OmegaConf.set_readonly(cfg.hydra, False)  # as Hydra composed it
                else:
                    composer = composer_for(launcher.hydra_context.config_loader, launcher.config)
                    source = FullRecipe(composer, tuple(overrides), num)
                jobs.append(Job(num, list(overrides), source, obj))
            if i % 256 == 255:
                # what the jobs keep (models, recipes) stays: keep the cyclic GC from rescanning it
                # over and over; temporaries still go
                gc.freeze()
    finally:
        gc.unfreeze()
    if cfg is not None:
        hydra_config.set_config(cfg)  # leave HydraConfig as set_config leaves it
    if failures:
        raise app.ConfigValidationError(app.format_errors(failures, len(job_overrides)), failures)
    return jobs


def cache_folder_of(folder: str | None, obj: tp.Any) -> Path | None:
    """The cache root: the launcher's (or sweeper's) ``folder``, else the model's infra folder."""
    if folder:
        return Path(folder).expanduser().absolute()
    for infra in _infras(obj):
        if infra.folder is not None:
            return Path(infra.folder)
    return None


def _infras(obj: tp.Any) -> list[tp.Any]:
    if isinstance(obj, pydantic.BaseModel):
        return [v for v in obj.__dict__.values() if getattr(v, "_exca_is_infra", False)]
    return []


def method_dir_name(task_function: tp.Any, obj: tp.Any) -> str:
    from .infra import module_name

    function = getattr(task_function, "__exca_function__", task_function)
    function = getattr(function, "__exca_method__", function)
    infras = _infras(obj)
    version = infras[0].version if infras else "0"
    if hasattr(getattr(task_function, "__exca_function__", None), "__exca_method__"):
        cls = type(obj)  # same folder as obj.method() from Python
        return f"{module_name(cls)}.{cls.__qualname__}.{function.__name__},{version}"
    module = function.__module__
    if module == "__main__":
        module = module_name(type("_", (), {"__module__": "__main__"}))
    return f"{module}.{function.__qualname__},{version}"


def assign_entries(task_function: tp.Any, folder: str | None, jobs: tp.Sequence[Job]) -> None:
    for job in jobs:
        root = cache_folder_of(folder, job.obj)
        if root is None:
            continue
        job.uid = uid_string(uid_config(job.obj))
        job.entry = Entry(root / method_dir_name(task_function, job.obj) / job.uid)


def verify_entries(jobs: tp.Sequence[Job], statuses: tp.Sequence[str] | None = None) -> None:
    """Every cached outcome about to be reused must be this config's: report all that are not
    (edited files, changed defaults) before anything runs."""
    from .store import CacheError
    from .uid import identity_config

    problems = []
    for i, job in enumerate(jobs):
        if job.entry is None:
            continue
        status = statuses[i] if statuses is not None else job.entry.file_status()
        if status in ("completed", "failed"):
            try:
                job.entry.verify(uid_config(job.obj), identity_config(job.obj))
            except CacheError as e:
                problems.append(f"  #{job.num} : {' '.join(filter_overrides(job.overrides))}\n      {e}")
    if problems:
        raise app.ConfigValidationError(
            f"{len(problems)} cached entr{'y' if len(problems) == 1 else 'ies'} cannot be reused; nothing was "
            "launched (hydra.sweeper.mode=force recomputes them):\n" + "\n".join(problems)
        )


# ----- job side -----
class CachedTask:
    """The task run inside ``run_job``: convert, compute (or read the cache), store."""

    def __init__(self, task_function: tp.Any, entry_folder: str | None) -> None:
        self.task_function = task_function
        self.entry_folder = entry_folder

    def __call__(self, cfg: DictConfig) -> tp.Any:
        model = getattr(self.task_function, "__exca_model__", None)
        if model is not None:
            obj = app.to_model(cfg, model)
            function = self.task_function.__exca_function__
            compute = getattr(function, "__exca_method__", function)
        else:
            obj, compute = cfg, self.task_function
        if self.entry_folder is None:
            return compute(obj)
        entry = Entry(self.entry_folder)
        if entry.has_result():
            return entry.load_result()
        from .executor import run_and_store

        run_and_store(compute, obj, self.entry_folder)
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

    def __init__(self, payload_path: str, indices: tp.Sequence[int]) -> None:
        self.payload_path = payload_path
        self.indices = list(indices)

    def __call__(self) -> list[JobReturn]:
        payload = _LOADED.get(self.payload_path)
        if payload is None:
            import cloudpickle

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
        return submitit.helpers.DelayedSubmission(SlurmJobCall(self.payload_path, self.indices))


# ----- backends -----
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


def cached_return(job: Job, status: str) -> JobReturn:
    """The JobReturn of a job that did not run in this launch: its cached outcome."""
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)  # cfg: rebuilt if read
    assert job.entry is not None
    if status == "completed":
        ret.status = JobStatus.COMPLETED
        ret.return_value = job.entry.load_result()
    else:
        ret.status = JobStatus.FAILED
        ret.return_value = job.entry.load_error() if status == "failed" else RuntimeError(
            f"Job #{job.num} ({' '.join(job.overrides)}) is not computed (mode=read-only)"
        )
    return ret


def _failed(job: Job, error: BaseException) -> JobReturn:
    ret = LazyReturn(job, hydra_cfg=None, working_dir=None, task_name=None)
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret


class _Progress:
    """A live bar on a terminal (tqdm); plain log lines, at most every 5 s, otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.last = 0.0
        self.bar: tp.Any = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="job", desc="sweep", leave=False)
            except ImportError:
                pass

    def update(self, done: int, failed: int, running: int) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(failed=failed, running=running, pending=self.total - done - running)
            if done == self.total:
                self.bar.close()
            return
        now = time.time()
        if now - self.last > 5 or done == self.total:
            self.last = now
            logger.info(
                "Progress: %d/%d done, %d failed, %d running, %d pending",
                done, self.total, failed, running, self.total - done - running,
            )


def run_local(launcher: tp.Any, params: LauncherParams, jobs: tp.Sequence[Job]) -> None:
    """Fork one process per job, at most ``array_parallelism`` at once: no interpreter start-up,
    and a crashed job only loses itself."""
    payload = _payload(launcher, jobs)
    folder = Path(str(launcher.config.hydra.sweep.dir)) / ".exca"
    folder.mkdir(parents=True, exist_ok=True)
    limit = params.array_parallelism or os.cpu_count() or 1
    running: dict[int, int] = {}  # pid -> job index
    pending = list(range(len(jobs)))
    progress = _Progress(len(jobs))
    done = failed = 0
    while pending or running:
        while pending and len(running) < limit:
            index = pending.pop(0)
            pid = os.fork()
            if pid == 0:  # child: run the job, write its JobReturn, leave without cleanup handlers
                code = 0
                try:
                    ret = run_one(payload, index, str(os.getpid()))
                    _write_return(folder / f"{index}.pkl", ret)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            running[pid] = index
            jobs[index].started = time.time()
        pid, status = os.wait()
        index = running.pop(pid)
        jobs[index].ended = time.time()
        job = jobs[index]
        result_path = folder / f"{index}.pkl"
        if result_path.exists():
            with result_path.open("rb") as f:
                job.result = pickle.load(f)
            result_path.unlink()
        else:
            reason = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.waitstatus_to_exitcode(status)}"
            job.result = _failed(job, JobFailure(f"Job #{job.num} process died ({reason}) before returning"))
        done += 1
        failed += job.result.status == JobStatus.FAILED
        progress.update(done, failed, len(running))


def _write_return(path: Path, ret: JobReturn) -> None:
    try:
        data = pickle.dumps(ret)
    except Exception as e:  # e.g. an unpicklable return value
        ret.status = JobStatus.FAILED
        ret._return_value = RuntimeError(f"The job's return value cannot be pickled: {e}")
        data = pickle.dumps(ret)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _payload(launcher: tp.Any, jobs: tp.Sequence[Job]) -> Payload:
    return Payload(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        singleton_state=Singleton.get_state(),
        sources=[job.portable() for job in jobs],
        entries=[str(job.entry.folder) if job.entry else None for job in jobs],
    )


def run_slurm(launcher: tp.Any, params: LauncherParams, jobs: tp.Sequence[Job]) -> None:
    import cloudpickle
    import submitit

    from . import executor as _exec

    submitit_folder = Path(params.submitit_folder).absolute()  # relative to the cwd, like hydra.sweep.dir
    executor = submitit.AutoExecutor(folder=submitit_folder, cluster="slurm", slurm_max_num_timeout=params.max_num_timeout)
    executor.update_parameters(**params.submitit_parameters())
    size = params.max_array_size or _exec.max_array_size()  # tasks per array (indices 0..size-1)
    payload_dir = submitit_folder.parent if "%" in submitit_folder.name else submitit_folder
    payload_dir.mkdir(parents=True, exist_ok=True)
    payload_path = payload_dir / f"payload-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.pkl"
    with payload_path.open("wb") as f:
        cloudpickle.dump(_payload(launcher, jobs), f)
    per_task = max(1, params.jobs_per_task)
    tasks = [list(range(i, min(i + per_task, len(jobs)))) for i in range(0, len(jobs), per_task)]
    sub_jobs: list[tp.Any] = []
    submitted_at = time.time()
    for job in jobs:
        job.started = submitted_at  # durations include the time in the queue
    for start in range(0, len(tasks), max(1, size)):
        with executor.batch():
            for task in tasks[start : start + size]:
                sub_jobs.append(executor.submit(SlurmJobCall(str(payload_path), task)))
    for task, sub in zip(tasks, sub_jobs):
        for index in task:
            job = jobs[index]
            logger.info("\t#%d : %s -> Slurm job %s", job.num, " ".join(filter_overrides(job.overrides)), sub.job_id)
            if job.entry is not None:
                job.entry.write_job(_exec.job_ref(sub))
    _collect(jobs, tasks, sub_jobs)


def _collect(jobs: tp.Sequence[Job], tasks: tp.Sequence[tp.Sequence[int]], sub_jobs: tp.Sequence[tp.Any]) -> None:
    """Wait for every task; a killed task's jobs become FAILED JobReturns, the others are kept."""
    progress = _Progress(len(jobs))
    waiting = set(range(len(tasks)))
    done = failed = 0
    delay = 0.2
    while waiting:
        for position in sorted(waiting):
            sub = sub_jobs[position]
            if not sub.done():
                continue
            waiting.discard(position)
            try:
                results = sub.result()
            except Exception as e:
                log = getattr(getattr(sub, "paths", None), "stderr", "?")
                error = JobFailure(f"Slurm job {sub.job_id} ({sub.state}) failed: {e}\nlog: {log}")
                # a packed task may have finished some of its jobs before it died: keep those
                results = [
                    cached_return(jobs[i], "completed") if jobs[i].entry is not None and jobs[i].entry.has_result()
                    else _failed(jobs[i], error)
                    for i in tasks[position]
                ]
            for index, ret in zip(tasks[position], results):
                job = jobs[index]
                job.ended = time.time()
                job.result = ret
                if ret.status == JobStatus.FAILED and job.entry is not None and not job.entry.file_status():
                    job.entry.write_error(ret._return_value, "")
                failed += ret.status == JobStatus.FAILED
            done += len(tasks[position])
        progress.update(done, failed, len(jobs) - done)
        if waiting:
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)  # a stat of each result file: cheap, and the tail stays short


def _outcome(ret: JobReturn | None) -> str:
    """The result, or the error's last line, in one short line."""
    if ret is None:
        return "?"
    value = ret._return_value
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else repr(value)
    lines = text.strip().splitlines() or [""]
    line = lines[-1] if isinstance(value, BaseException) else lines[0]
    return line if len(line) <= 60 else line[:57] + "..."


def summary(jobs: tp.Sequence[Job]) -> str:
    """End-of-sweep table: number, status, duration, uid, overrides, result or error."""
    lines = ["Sweep summary:", f"  {'#':>4}  {'status':<9} {'time':>7}  {'uid':<36} {'overrides':<30} result"]
    shown = list(jobs)
    if len(shown) > 50:  # a long sweep: list the failures only
        shown = [job for job in jobs if job.result is None or job.result.status != JobStatus.COMPLETED]
        lines[0] = f"Sweep summary: {len(jobs) - len(shown)} of {len(jobs)} jobs completed; the others:"
    for job in shown:
        status = job.result.status.name if job.result is not None else "?"
        seconds = f"{job.ended - job.started:.1f}s" if job.ended else "-"
        overrides = " ".join(filter_overrides(job.overrides))
        lines.append(
            f"  {job.num:>4}  {status:<9} {seconds:>7}  {(job.uid or '-')[:36]:<36} {overrides:<30} {_outcome(job.result)}"
        )
    return "\n".join(lines)


def launcher_params(launcher: tp.Any) -> LauncherParams:
    # locally, the Slurm fields mean nothing: LocalLauncherParams rejects them
    models = [LauncherParams, LocalLauncherParams] if launcher.cluster == "local" else [LauncherParams]
    return app.plugin_params(models, launcher.params, "launcher")  # type: ignore[no-any-return]


def launch(launcher: tp.Any, job_overrides: tp.Sequence[tp.Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    params: LauncherParams = launcher_params(launcher)
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] | None = getattr(launcher, "_exca_jobs", None)
    launcher._exca_jobs = None  # composed and validated by the exca sweeper: used once
    if jobs is None:
        jobs = prepare(launcher, job_overrides, initial_job_idx)
        assign_entries(launcher.task_function, params.folder, jobs)
        verify_entries(jobs)  # (the exca sweeper verified its jobs already)
    for job in jobs:
        if job.entry is not None and not job.entry.has_result():  # a result keeps its config
            job.entry.write_configs(_full_config(job.obj), uid_config(job.obj))
    logger.info("Exca %s launcher: launching %d validated job(s)", launcher.cluster, len(jobs))
    if launcher.cluster == "slurm":
        run_slurm(launcher, params, jobs)
    else:
        for job in jobs:
            logger.info("\t#%d : %s", job.num, " ".join(filter_overrides(job.overrides)))
        run_local(launcher, params, jobs)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    logger.info(summary(jobs))
    return [job.result for job in jobs]  # type: ignore[misc]


def _full_config(obj: tp.Any) -> dict[str, tp.Any]:
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    return tp.cast(dict, obj)
