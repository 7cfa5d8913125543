"""The launcher: compose -> validate every job -> uid -> submit (local processes or a Slurm array)
-> collect -> report.  The plugin classes in ``hydra_plugins`` only forward to ``launch``.
"""

from __future__ import annotations

import logging
import typing as tp
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf

from . import app
from .store import Entry
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
    uid_cfg: dict[str, tp.Any] | None = None  # what the uid is computed from (computed once)
    result: JobReturn | None = field(default=None, repr=False)
    started: float = 0.0
    ended: float = 0.0
    from_cache: bool = False  # its outcome was read from the cache, not computed in this sweep

    @property
    def shown_overrides(self) -> str:
        """The overrides the user typed, as Hydra names a job in messages."""
        return " ".join(filter_overrides(self.overrides))

    @property
    def uid(self) -> str | None:
        return None if self.entry is None else self.entry.uid

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
    from .infra import import_name, module_name

    function = getattr(task_function, "__exca_function__", task_function)
    function = getattr(function, "__exca_method__", function)
    infras = _infras(obj)
    version = infras[0].version if infras else "0"
    if hasattr(getattr(task_function, "__exca_function__", None), "__exca_method__"):
        cls = type(obj)  # same folder as obj.method() from Python
        return f"{module_name(cls)}.{cls.__qualname__}.{function.__name__},{version}"
    # named when decorated: in a job process, __main__ is whatever started the job
    module = getattr(task_function, "__exca_module__", None) or import_name(function.__module__)
    return f"{module}.{function.__qualname__},{version}"


def entry_of(
    task_function: tp.Any, folder: str | None, obj: tp.Any, uid_cfg: dict[str, tp.Any] | None = None
) -> Entry | None:
    """The cache entry of one job: ``<root>/<module.function>,<version>/<uid>`` (None: no cache)."""
    root = cache_folder_of(folder, obj)
    if root is None or getattr(task_function, "__exca_uncached__", False):  # the model's methods cache
        return None
    uid = uid_string(uid_config(obj) if uid_cfg is None else uid_cfg)
    return Entry(root / method_dir_name(task_function, obj) / uid)


def assign_entries(task_function: tp.Any, folder: str | None, jobs: tp.Sequence[Job]) -> None:
    for job in jobs:
        job.uid_cfg = uid_config(job.obj)
        job.entry = entry_of(task_function, folder, job.obj, job.uid_cfg)


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
                job.entry.verify(job.uid_cfg or uid_config(job.obj), identity_config(job.obj))
            except CacheError as e:
                problems.append(f"  #{job.num} : {job.shown_overrides}\n      {e}")
    if problems:
        raise app.ConfigValidationError(
            f"{len(problems)} cached entr{'y' if len(problems) == 1 else 'ies'} cannot be reused; nothing was "
            "launched (hydra.sweeper.mode=force recomputes them):\n" + "\n".join(problems)
        )


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
    by_sweeper = jobs is not None  # then the sweeper sums up the whole sweep, cached jobs included
    if jobs is None:
        jobs = prepare(launcher, job_overrides, initial_job_idx)
        assign_entries(launcher.task_function, params.folder, jobs)
        verify_entries(jobs)  # (the exca sweeper verified its jobs already)
    from .backends import run_local, run_slurm, summary, wait_for_others

    mine, others = claim_entries(jobs)
    try:
        for job in mine:
            if job.entry is not None and not job.entry.has_result():  # a result keeps its config
                job.entry.write_configs(_full_config(job.obj), job.uid_cfg or uid_config(job.obj))
        logger.info("Exca %s launcher: launching %d validated job(s)", launcher.cluster, len(mine))
        if others:
            logger.info("%d job(s) are being computed by another process: waiting for them", len(others))
        if launcher.cluster == "slurm":
            run_slurm(launcher, params, mine)
        else:
            for job in mine:
                logger.info("\t#%d : %s", job.num, job.shown_overrides)
            run_local(launcher, params, mine)
    finally:
        for job in mine:
            if job.entry is not None:
                job.entry.release()
    wait_for_others(others)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    if not by_sweeper:
        logger.info(summary(jobs))
        for job in jobs:
            _note_job_traceback(job)
    return [job.result for job in jobs]  # type: ignore[misc]


def _note_job_traceback(job: Job) -> None:
    """The error came from another process, without its frames: Hydra's sweeper re-raises it
    here, so add the task's traceback (from the job's error.txt) as a note that Python prints."""
    if job.result is None or job.result.status != JobStatus.FAILED or job.entry is None:
        return
    error, text = job.result._return_value, job.entry.error_text().rstrip()
    note = f"Job #{job.num} ({job.shown_overrides}); its traceback:\n{text}"
    if text and hasattr(error, "add_note") and note not in getattr(error, "__notes__", ()):  # Python 3.11+
        error.add_note(note)


def claim_entries(jobs: tp.Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """(jobs to run here, jobs another live process is computing): of several processes
    launching the same uid at once, only the one holding its claim runs it."""
    from .executor import ref_is_running

    mine, others = [], []
    for job in jobs:
        entry = job.entry
        if entry is None or entry.has_result():
            mine.append(job)  # no cache, or the job side reads the result back
            continue
        if not entry.claim():
            others.append(job)
            continue
        ref = entry.read_job()  # submitted by an earlier launch that is still running?
        if entry.file_status() is None and ref is not None and ref_is_running(ref)[0]:
            entry.release()
            others.append(job)
        else:
            mine.append(job)
    return mine, others


def _full_config(obj: tp.Any) -> dict[str, tp.Any]:
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    return tp.cast(dict, obj)
