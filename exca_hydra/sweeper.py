"""The cache-aware sweeper: expand the sweep, validate every job, skip the uids already computed,
launch the rest with stable job numbers, and return one JobReturn per job in order."""

from __future__ import annotations

import logging
import time
import typing as tp
from pathlib import Path

import pydantic
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

from . import app
from .backends import summary
from .executor import entry_status
from .job import cached_return
from .launcher import Job, assign_entries, launcher_params, prepare, verify_entries
from .store import ERROR_TEXT, Status

logger = logging.getLogger(__name__)

SweepMode = tp.Literal["cached", "retry", "force", "read-only"]


class SweeperParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    mode: SweepMode = "cached"
    dry_run: bool = False
    folder: str | None = None  # cache root when the launcher has none


def expand(sweeper: tp.Any, params: SweeperParams, arguments: list[str]) -> list[list[list[str]]]:
    """Hydra's basic sweep syntax (lists, range, choice, glob), in batches of max_batch_size."""
    extra = [f"{k}={v}" for k, v in (params.params or {}).items()]
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(extra + list(arguments))
    return BasicSweeper.split_arguments(overrides, params.max_batch_size)  # type: ignore[no-any-return]


def _to_run(status: Status, mode: SweepMode) -> bool:
    if mode == "force":
        return True
    if mode == "read-only":
        return False
    return status == "not submitted" or (status == "failed" and mode == "retry")


def dry_run_table(jobs: tp.Sequence[Job], statuses: tp.Sequence[str]) -> str:
    lines = [f"{'#':>5}  {'status':<13} {'uid':<50} overrides"]
    names = {"completed": "cached", "not submitted": "missing"}
    for job, status in zip(jobs, statuses):
        lines.append(f"{job.num:>5}  {names.get(status, status):<13} {(job.uid or '-'):<50} {job.shown_overrides}")
    return "\n".join(lines)


def _wait_running(jobs: tp.Sequence[Job]) -> None:
    """Jobs submitted by an earlier, interrupted invocation: wait for them instead of resubmitting."""
    waiting = [job for job in jobs if job.entry is not None]
    delay = 0.5
    while waiting:
        waiting = [job for job in waiting if entry_status(job.entry) == "running"]  # type: ignore[arg-type]
        if waiting:
            logger.info("Waiting for %d job(s) already running", len(waiting))
            time.sleep(delay)
            delay = min(delay * 1.5, 10.0)


def _launch_groups(jobs: tp.Sequence[Job], to_run: tp.Sequence[bool], exca_launcher: bool) -> list[list[Job]]:
    """Jobs to skip one by one; jobs to run in as few launches as numbering allows. An exca
    launcher takes each job's number from the job: all of a batch's jobs to run go out together
    (e.g. one Slurm array for a retry of scattered failures). Another launcher numbers jobs from
    ``initial_job_idx``: one launch per contiguous run keeps the numbers stable."""
    groups: list[list[Job]] = []
    if exca_launcher:
        groups = [[job] for job in jobs if not to_run[job.num]]
        to_launch = [job for job in jobs if to_run[job.num]]
        return groups + ([to_launch] if to_launch else [])
    for job in jobs:
        if groups and to_run[job.num] and to_run[groups[-1][0].num]:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def sweep(sweeper: tp.Any, arguments: list[str]) -> list[list[JobReturn]]:
    params: SweeperParams = app.plugin_params([SweeperParams], sweeper.params, "sweeper")
    if hasattr(sweeper.launcher, "_exca_jobs"):  # an exca launcher: when every job is cached it is
        launcher_params(sweeper.launcher)  # never called, so check its parameters here
    batches = expand(sweeper, params, arguments)
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")

    # validate the whole sweep before the first batch runs
    all_overrides = [job for batch in batches for job in batch]
    jobs = prepare(sweeper, all_overrides, 0, keep_full=not params.dry_run)
    launcher = sweeper.launcher
    folder = params.folder or (getattr(launcher, "params", None) or {}).get("folder")
    assign_entries(sweeper.task_function, folder, jobs)
    statuses: list[Status] = [entry_status(job.entry) if job.entry else "not submitted" for job in jobs]
    if params.mode != "force":
        verify_entries(jobs, statuses)

    if params.dry_run:
        print(dry_run_table(jobs, statuses))
        return []
    to_run = [job.entry is None or _to_run(status, params.mode) for job, status in zip(jobs, statuses)]
    running = [job for job, status, run in zip(jobs, statuses, to_run) if status == "running" and not run]
    logger.info(
        "Exca sweeper: %d job(s): %d cached, %d running, %d to run (mode=%s)",
        len(jobs), statuses.count("completed"), len(running), sum(to_run), params.mode,
    )
    _wait_running(running)

    uses_exca_launcher = hasattr(launcher, "_exca_jobs")
    returns: list[list[JobReturn]] = []
    start = 0
    for batch in batches:
        batch_jobs = jobs[start : start + len(batch)]
        start += len(batch)
        results: dict[int, JobReturn] = {}
        for chunk in _launch_groups(batch_jobs, to_run, uses_exca_launcher):
            if not to_run[chunk[0].num]:
                for job in chunk:
                    status = entry_status(job.entry) if job.entry else "not submitted"
                    results[job.num] = job.result = cached_return(job, status)
                    job.from_cache = status in ("completed", "failed")
                continue
            for job in chunk:
                # force/retry: the job side must not read the old outcome. Only what was there
                # when we looked: an outcome that appeared since is another process's fresh one
                if job.entry is not None and statuses[job.num] in ("completed", "failed"):
                    job.entry.clear()
            if uses_exca_launcher:
                launcher._exca_jobs = chunk
            rets = launcher.launch([job.overrides for job in chunk], initial_job_idx=chunk[0].num)
            for job, ret in zip(chunk, rets):
                results[job.num] = job.result = ret
        returns.append([results[job.num] for job in batch_jobs])
    logger.info(summary(jobs))
    failed = [job for job in jobs if job.result is not None and job.result.status == JobStatus.FAILED]
    if failed:  # like Hydra's basic sweeper, raise after every job ran; but one message for all
        raise SweepFailed(failed, len(jobs))
    return returns


SHOWN_FAILURES = 20  # past this, the summary table lists the rest


class SweepFailed(CompactHydraException):
    """Some jobs failed: each with its overrides, its error and where its traceback is, then the
    first one's traceback (the task's own frames, as the job recorded them)."""

    def __init__(self, failed: tp.Sequence[Job], total: int) -> None:
        lines = [f"{len(failed)} of {total} job(s) failed (the other jobs' results are kept):"]
        first_traceback = ""
        for job in failed[:SHOWN_FAILURES]:
            error = job.result._return_value if job.result is not None else None
            lines.append(f"  #{job.num} : {job.shown_overrides or '(no overrides)'}")
            lines.extend(f"      {line}" for line in f"{type(error).__name__}: {error}".splitlines())
            text = job.entry.error_text().rstrip() if job.entry is not None else ""
            if text:  # a killed job left none: its error names its log
                lines.append(f"      traceback: {job.entry.path(ERROR_TEXT)}")  # type: ignore[union-attr]
                first_traceback = first_traceback or f"Traceback of job #{job.num}:\n{text}"
        if len(failed) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(failed) - SHOWN_FAILURES} more (the summary above lists them)")
        if first_traceback:
            lines.append(first_traceback)
        lines.append("hydra.sweeper.mode=retry runs the failed jobs again.")
        super().__init__("\n".join(lines))
        self.jobs = list(failed)

