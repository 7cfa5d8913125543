"""The cache-aware sweeper: expand the sweep, validate every job, skip the uids already computed,
launch the rest with stable job numbers, and return one JobReturn per job in order."""

from __future__ import annotations

import functools
import logging
import re
import typing as tp
from pathlib import Path

import pydantic
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from ...cache.layout import check_cache_folder
from ...execution.option_fields import SweeperFields
from .convert import plugin_params
from .hydra_job import cached_return
from .task_info import task_info
from .jobs import Context, HydraJob, assign_entries, configured_folder, has_result, plan_jobs, prepare, uncached_maps
from .jobs import verify_entries
from .launcher import PlanLauncher, launch_plan, launcher_params
from .stops import wait_for_others
from .report import SweepFailed, summary

logger = logging.getLogger(__name__)


class SweeperParams(SweeperFields, pydantic.BaseModel):
    """``hydra.sweeper.*`` of the ``exca`` sweeper, declared in execution/option_fields.py."""

    model_config = pydantic.ConfigDict(extra="forbid")
    _folder = pydantic.field_validator("folder")(check_cache_folder)

    @pydantic.field_validator("best")
    @classmethod
    def _best(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(max|min):result(\..+)?", value):
            raise ValueError(f"best={value!r} is not (max|min):result[.key], e.g. max:result.accuracy")
        return value


def expand(sweeper: tp.Any, params: SweeperParams, arguments: list[str]) -> list[list[list[str]]]:
    """Hydra's basic sweep syntax (lists, range, choice, glob), in batches of max_batch_size."""
    extra = [f"{k}={v}" for k, v in (params.params or {}).items()]
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(extra + list(arguments))
    return BasicSweeper.split_arguments(overrides, params.max_batch_size)  # type: ignore[no-any-return]


def dry_run_table(jobs: tp.Sequence[HydraJob]) -> str:
    lines = [f"{'#':>5}  {'status':<13} {'uid':<50} overrides"]
    names = {"completed": "cached", "not submitted": "missing"}
    for job in jobs:
        lines.append(f"{job.num:>5}  {names.get(job.status, job.status):<13} {(job.uid or '-'):<50} {job.shown_overrides}")
    return "\n".join(lines)


def _launch_groups(jobs: tp.Sequence[HydraJob]) -> list[list[HydraJob]]:
    """Jobs to skip one by one; jobs to run in contiguous runs (another launcher numbers jobs
    from ``initial_job_idx``: one launch per contiguous run keeps the numbers stable)."""
    groups: list[list[HydraJob]] = []
    for job in jobs:
        if groups and _to_run(job) and _to_run(groups[-1][0]):
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def _to_run(job: HydraJob) -> bool:
    return job.step is not None and job.step.action == "run"


def sweep(sweeper: tp.Any, arguments: list[str], exca: PlanLauncher | None) -> list[list[JobReturn]]:
    """``exca``: the sweeper's launcher when it is one of exca's (the plugin layer knows their
    class), which takes the planned jobs as they are; None: another launcher, given overrides."""
    params: SweeperParams = plugin_params([SweeperParams], sweeper.params, "sweeper")
    launcher = sweeper.launcher
    exca_launcher = exca is not None
    if exca is not None:  # when every job is cached it is never called: check its parameters here
        launcher_params(exca)
    batches = expand(sweeper, params, arguments)
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")

    # validate the whole sweep before the first batch runs
    all_overrides = [job for batch in batches for job in batch]
    context = Context(sweeper.config, sweeper.hydra_context, sweeper.task_function)
    folder = configured_folder(sweeper.config.hydra)
    jobs = prepare(context, all_overrides, 0, keep_full=not params.dry_run, cached=None if params.dry_run or params.mode == "force"
                   else functools.partial(has_result, sweeper.task_function, folder))  # fmt: skip
    assign_entries(sweeper.task_function, folder, jobs)
    _say_what_is_cached(sweeper, jobs, exca_launcher)
    plan_jobs(jobs, params.mode)
    verify_entries(jobs, reuse=params.mode != "force")

    if params.dry_run:
        print(dry_run_table(jobs))
        return []
    logger.info(plan_line(jobs, params.mode))

    returns: list[list[JobReturn]] = []
    start = 0
    for batch in batches:
        batch_jobs = jobs[start : start + len(batch)]
        start += len(batch)
        if exca is not None:  # the typed hand-off: the launcher runs the plan (waits, skips included)
            launch_plan(exca, batch_jobs)
        else:
            _launch_with(launcher, batch_jobs)
        returns.append([job.result for job in batch_jobs])  # type: ignore[misc]
    logger.info(summary(jobs, best=params.best))
    failed = [job for job in jobs if job.result is not None and job.result.status == JobStatus.FAILED]
    if failed:  # like Hydra's basic sweeper, raise after every job ran; but one message for all
        raise SweepFailed(failed, len(jobs))
    return returns


def plan_line(jobs: tp.Sequence[HydraJob], mode: str) -> str:
    """What the sweep will do, every job counted: failures recorded last time are cached too,
    so they are named, with how to run them again."""
    statuses = [job.status for job in jobs]
    failed = [job for job in jobs if job.status == "failed" and not _to_run(job)]
    line = (f"Exca sweeper: {len(jobs)} job(s): {statuses.count('completed')} cached, {statuses.count('running')} running, "
            f"{sum(map(_to_run, jobs))} to run (mode={mode})")  # fmt: skip
    if failed:
        named = "; ".join(f"#{job.num} {job.shown_overrides or '(no overrides)'}" for job in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        line += (f", {len(failed)} failed last time (their recorded error is reported): {named}{more}; "
                 "hydra.sweeper.mode=retry runs them again")  # fmt: skip
    return line


def _say_what_is_cached(sweeper: tp.Any, jobs: tp.Sequence[HydraJob], exca_launcher: bool) -> None:
    """Caching is never silently off: say why once, before anything runs."""
    plain = task_info(sweeper.task_function) is None
    if plain and not exca_launcher:  # the launcher calls the DictConfig task itself: no cache
        for job in jobs:
            job.entry = None
        target = str(sweeper.config.hydra.launcher.get("_target_", "this launcher")).rpartition(".")[2]
        logger.warning(
            "Exca sweeper: %s runs a plain @hydra.main task itself, so nothing will be cached (every job "
            "runs again next time): use hydra/launcher=exca_local or exca_slurm, or exca_hydra.main", target,
        )  # fmt: skip
        return
    for path, method in uncached_maps(jobs[0].obj if jobs else None):  # a sub-config's own cache
        logger.warning("Exca sweeper: %s.folder is not set, so the items of %s are not cached (each job computes "
                       "them again): set %s.folder", path, method, path)  # fmt: skip
    uncached = sum(job.entry is None for job in jobs)
    if uncached:
        where = "hydra.sweeper.folder or hydra.launcher.folder" + ("" if plain else " or the model's infra.folder")
        some = "" if uncached == len(jobs) else f" for {uncached} of {len(jobs)} job(s)"
        logger.warning(
            "Exca sweeper: no cache folder%s, nothing will be cached (every job runs again next time): set %s",
            some, where,
        )  # fmt: skip


def _launch_with(launcher: tp.Any, jobs: tp.Sequence[HydraJob]) -> None:
    """Another launcher numbers jobs from ``initial_job_idx``: one launch per contiguous run of
    jobs to run keeps the numbers stable; the others get their cached outcome (after waiting for
    those another process is computing)."""
    wait_for_others([job for job in jobs if job.step is not None and job.step.action == "wait"])
    for chunk in _launch_groups(jobs):
        if not _to_run(chunk[0]):
            for job in chunk:
                if job.result is not None:  # waited for above
                    continue
                job.result = cached_return(job)
                job.from_cache = job.status in ("completed", "failed")
            continue
        for job in chunk:
            # force/retry: the job side must not read the old outcome (only what was there when we looked)
            if job.entry is not None and job.status in ("completed", "failed"):
                job.entry.clear_outcome()
        rets = launcher.launch([job.overrides for job in chunk], initial_job_idx=chunk[0].num)
        for job, ret in zip(chunk, rets):
            job.result = ret
