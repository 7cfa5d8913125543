"""The launchers: compose -> validate every job -> uid -> plan (status read once) -> claim ->
submit (forked local processes or a Slurm array) -> collect -> report.

``launch`` is Hydra's entry (override lists, e.g. under Hydra's basic sweeper): it composes,
validates and plans its batch, then calls ``launch_plan``, the one launch function, which the exca
sweeper calls with the jobs it already composed, validated and planned. The plugin classes in
``hydra_plugins`` only forward to these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import typing as tp
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from omegaconf import OmegaConf

from ...cache.digest import field_digests
from ...cache.store import CacheError, CacheNotWritable
from ...execution import engine
from ...execution.backends import Backend
from ...execution.fork import ForkBackend
from ...execution.pull import slurm_backend
from ...execution.options import Mode
from ...execution.fork_job import JobSetup
from ...execution.slurm import slurm_queue
from ...execution.worker import script_dir
from ...workdir import inside
from .convert import ConfigValidationError, plugin_params
from .params import LauncherParams, LocalLauncherParams
from .hydra_job import HydraBatch, cached_return, failed_return
from .jobs import Context, HydraJob, assign_entries, cache_root, full_config, plan_jobs, prepare, verify_entries
from .task_info import task_info
from .report import Progress, SweepStopped, summary
from .sweep_record import record_end, record_plan
from .stops import FailFast, cached_folder, interrupted, not_waited, not_waited_return, note_job_traceback, read_here
from .stops import wait_for_others

logger = logging.getLogger("exca_hydra.launcher")


class PlanLauncher(tp.Protocol):
    """What the exca launchers are to the library (their plugin classes in ``hydra_plugins``)."""

    cluster: str
    params: dict[str, tp.Any]
    config: tp.Any
    hydra_context: tp.Any
    task_function: tp.Any


# an exca launcher alone (under Hydra's basic sweeper) reuses results and recomputes failures
LAUNCHER_MODE: Mode = "retry"


def launcher_params(launcher: PlanLauncher) -> LauncherParams | LocalLauncherParams:
    model = LauncherParams if launcher.cluster == "slurm" else LocalLauncherParams
    return plugin_params([model], launcher.params, "launcher")  # type: ignore[no-any-return]


def launch(launcher: PlanLauncher, job_overrides: tp.Sequence[tp.Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Hydra's launch: every job of the batch is validated before anything runs."""
    params = launcher_params(launcher)
    _setup(launcher)
    context = Context(launcher.config, launcher.hydra_context, launcher.task_function)
    invalid: list[tp.Any] | None = None if fails_the_sweep(launcher.config) else []
    if invalid is not None and not waits(params):  # Optuna and the like read each result
        sweeper = str((launcher.config.hydra.get("sweeper") or {}).get("_target_", "this sweeper")).rpartition(".")[2]
        raise SweepStopped(f"hydra.launcher.wait=false: {sweeper} proposes its next jobs from the results of "
                           "the last ones, so it needs them; nothing was submitted (keep wait=true)")  # fmt: skip
    jobs = prepare(context, job_overrides, initial_job_idx, invalid=invalid)
    assign_entries(launcher.task_function, params.folder, jobs)
    _say_if_uncached(launcher, jobs)
    plan_jobs(jobs, LAUNCHER_MODE)
    verify_entries(jobs)
    for job in jobs:  # each job still goes through run_job (its folder, .hydra/), reading its result
        if job.step is not None and job.step.status == "completed":
            job.step.action = "read"
    launch_plan(launcher, jobs, params)
    for job in jobs:  # read back through the job side: cached, not computed
        job.from_cache = job.from_cache or (job.step is not None and job.step.action == "read")
    failed = [_invalid_job(num, job_overrides[num - initial_job_idx], errors) for num, _, errors in invalid or ()]
    jobs = sorted([*jobs, *failed], key=lambda job: job.num)
    logger.info(summary(jobs))
    for job in jobs:
        note_job_traceback(job)
    return [job.result for job in jobs]  # type: ignore[misc]


# sweepers that hand over a fixed list of jobs: one invalid job fails the sweep before anything
# runs; any other sweeper proposes configs itself (Optuna, Nevergrad, Ax): an invalid one is a
# failed trial, which the sweeper handles as any failed job
STRICT_SWEEPERS = (
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.exca_hydra_plugin.sweeper.ExcaSweeper",
)


def fails_the_sweep(config: tp.Any) -> bool:
    """Whether an invalid job fails the whole launch (else: that job's JobReturn is FAILED)."""
    sweeper = config.hydra.get("sweeper") or {}
    return str(sweeper.get("_target_", "")) in STRICT_SWEEPERS


def _invalid_job(num: int, overrides: tp.Sequence[str], errors: tp.Sequence[tp.Any]) -> HydraJob:
    """A job whose config did not validate: FAILED, with the field and the value in its error."""
    job = HydraJob(num, list(overrides), None, None)
    lines = [f"Invalid config of job #{num} ({job.shown_overrides or 'no overrides'}); it did not run:"]
    lines += [f"  {error.field}: {error.message}" for error in errors]
    error = ConfigValidationError("\n".join(lines), errors)
    job.result = JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error)
    return job


def _say_if_uncached(launcher: PlanLauncher, jobs: tp.Sequence[HydraJob]) -> None:
    """Caching is never silently off: say why, once per launcher."""
    if not any(job.entry is None for job in jobs) or getattr(launcher, "_said_uncached", False):
        return
    setattr(launcher, "_said_uncached", True)
    plain = task_info(launcher.task_function) is None
    logger.warning(
        "Exca %s launcher: no cache folder, nothing will be cached (every job runs again next time): set "
        "hydra.launcher.folder%s", launcher.cluster, "" if plain else " or the model's infra.folder",
    )  # fmt: skip


def launch_plan(
    launcher: PlanLauncher, jobs: tp.Sequence[HydraJob], params: LauncherParams | LocalLauncherParams | None = None
) -> list[JobReturn]:
    """The one launch of planned jobs, which the exca sweeper (jobs composed, validated and
    planned for the whole sweep) and ``launch`` (one batch of override lists) both call: run the
    plan, then give each job read from the cache its sweep folder."""
    if params is None:
        params = launcher_params(launcher)
        _setup(launcher)
    run_plan(launcher, params, jobs)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    if OmegaConf.to_container(launcher.config.hydra.sweep, resolve=False).get("subdir") == "${hydra.job.num}":  # type: ignore[union-attr]
        for job in jobs:  # a cached job gets its folder too: .hydra/ and a pointer to its entry
            if job.from_cache and job.status == "completed" and job.step is not None and job.step.action == "skip":
                cached_folder(sweep_dir / str(job.num), job)
    return [job.result for job in jobs]  # type: ignore[misc]


def _setup(launcher: PlanLauncher) -> None:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)


def run_plan(launcher: PlanLauncher, params: LauncherParams | LocalLauncherParams, jobs: tp.Sequence[HydraJob]) -> None:
    """Run what the plan says; every job ends with a ``result`` (computed, cached or failed)."""
    try:
        _run_plan(launcher, params, jobs)
    except CacheNotWritable as e:  # nothing was submitted (claims come first)
        raise SweepStopped(str(e)) from None
    except Exception as e:
        if type(e).__name__ != "FailedJobError":  # submitit's: sbatch refused the array
            raise
        said = [line for line in str(e).splitlines() if line.strip()]
        raise SweepStopped(f"Slurm refused the submission, nothing was submitted or recorded: {said[-1] if said else e}") from None


def _run_plan(launcher: PlanLauncher, params: LauncherParams | LocalLauncherParams, jobs: tp.Sequence[HydraJob]) -> None:
    steps = [job.step for job in jobs]
    assert all(step is not None for step in steps), "run_plan needs planned jobs"
    if not waits(params) and any(job.entry is None for job in jobs if job.step.action == "run"):  # type: ignore[union-attr]
        raise SweepStopped("hydra.launcher.wait=false needs a cache folder (hydra.launcher.folder or the model's "
                           "infra.folder): without one a re-run cannot collect the jobs; nothing was submitted")  # fmt: skip
    with engine.claimed(steps) as positions:  # type: ignore[arg-type]
        mine = [jobs[p] for p in positions]
        for job in mine:
            if job.entry is not None and not job.entry.has_result():  # a result keeps its config
                job.entry.write_configs(full_config(job.obj), job.uid_cfg or {}, job.program, field_digests(job.obj))
        others = [job for job in jobs if job.step.action == "wait"]  # type: ignore[union-attr]
        reads = [job for job in mine if job.step.action == "read"]  # type: ignore[union-attr]
        mine = [job for job in mine if job.step.action != "read"]  # type: ignore[union-attr]
        record_plan(launcher.config.hydra.sweep.dir, jobs)  # for exca-hydra timeline --sweep
        logger.info("Exca %s launcher: launching %d validated job(s)", launcher.cluster, len(mine))
        if others:
            logger.info("%d job(s) are being computed by another process: %s (%s%s)", len(others),
                        "waiting for them" if waits(params) else "not waiting (wait=false), a re-run collects them",
                        "; ".join(engine.holder(job.entry) for job in others[:3] if job.entry is not None),
                        "; ..." if len(others) > 3 else "")  # fmt: skip
        if reads:  # cached: read back here, never submitted (a Slurm job to read a file is waste)
            read_here(launcher, reads)
        if mine:
            _submit_and_collect(launcher, params, mine)
    if waits(params):
        try:
            wait_for_others(others)
        except KeyboardInterrupt:  # collecting another launch's jobs: they go on, say so in one line
            left = [job for job in others if job.result is None]
            raise SweepStopped(f"Interrupted while waiting for {len(left)} job(s) computed by another launch; they "
                               "go on (queued or running), their results still reach the cache: re-run the same "
                               "command to collect them") from None  # fmt: skip
    else:  # still computed elsewhere (e.g. submitted by the last run): collected next time too
        for job in others:
            job.result = not_waited_return(job)
    for job in jobs:
        if job.result is None:  # skipped: its cached outcome
            if job.step is not None and job.step.failure is not None:  # ended without a word: recorded
                engine.record_lost(job.entry, job.step.failure)
            job.result = cached_return(job)
            job.from_cache = job.status in ("completed", "failed")
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)


class Snapshot(tp.NamedTuple):
    """The code snapshot of a launch (``hydra.launcher.workdir``): where, and its copy of the
    launching script's folder."""

    target: Path
    import_path: str | None


def _snapshot(
    launcher: PlanLauncher, params: LauncherParams | LocalLauncherParams, jobs: tp.Sequence[HydraJob]
) -> Snapshot | None:
    if not params.workdir.copied:
        return None
    hydra = launcher.config.hydra
    sweep_dir = Path(str(hydra.sweep.dir)).absolute()
    skip = [sweep_dir]  # and Hydra's output folders under the copied ones (./multirun, ./outputs)
    for key in ("sweep.dir", "run.dir"):
        try:
            parts = Path(str(OmegaConf.select(hydra, key))).parts
        except Exception:  # e.g. an interpolation that needs a job
            continue
        if parts and parts[0] not in ("/", ".", ".."):
            skip.append(Path.cwd() / parts[0])
    skip += {root for job in jobs if (root := cache_root(params.folder, job.obj)) is not None}  # the cache
    try:
        target = params.workdir.copy(sweep_dir / ".exca" / "code", skip)
    except CacheError as e:  # a sweep dir someone else made: one message, nothing launched
        raise SweepStopped(f"{e}\nNothing was launched.") from None
    app = script_dir()
    return Snapshot(target.absolute(), app and params.workdir.relocated(app, target.absolute()))


def _backend(
    launcher: PlanLauncher, params: LauncherParams | LocalLauncherParams, jobs: tp.Sequence[HydraJob],
    snapshot: Snapshot | None, echo: tp.Callable[[str, bool], None],
) -> Backend:  # fmt: skip
    if isinstance(params, LauncherParams):
        extra = {"stderr_to_stdout": True} if params.stderr_to_stdout else {}
        return slurm_backend(  # type: ignore[no-any-return]
            "slurm", Path(params.submitit_folder), params, params.slurm_options(), name=params.name,
            max_array_size=params.max_array_size, extra=extra, import_path=snapshot and snapshot.import_path,
        )  # fmt: skip
    # a job's id: <launch id>_<job num>, as Slurm's <array>_<task>; it names the job's logs
    setup = JobSetup(
        ids=[f"{os.getpid()}_{job.num}" for job in jobs], logs=str(Path(params.submitit_folder).absolute()),
        stderr_to_stdout=params.stderr_to_stdout, workdir=snapshot and snapshot.target,
        import_path=snapshot and snapshot.import_path,
    )  # fmt: skip
    limit = params.array_parallelism or max(1, (os.cpu_count() or 1) // (params.cpus_per_task or 1))
    folder = Path(str(launcher.config.hydra.sweep.dir)).absolute() / ".exca"
    return ForkBackend(folder, limit, setup, params.timeout_min, echo)


def _submit_and_collect(launcher: PlanLauncher, params: LauncherParams | LocalLauncherParams, jobs: tp.Sequence[HydraJob]) -> None:
    progress = Progress(len(jobs))  # drawn from its first update on; the jobs' output goes above it
    snapshot = _snapshot(launcher, params, jobs)
    backend = _backend(launcher, params, jobs, snapshot, progress.write)
    per_task = max(1, getattr(params, "jobs_per_task", 1) or 1)  # None: pull workers, collected per job
    tasks = [list(range(i, min(i + per_task, len(jobs)))) for i in range(0, len(jobs), per_task)]
    batch = HydraBatch(launcher.hydra_context, launcher.task_function, jobs)
    if snapshot is not None:  # the jobs start in the snapshot: their outputs still go to the sweep dir
        batch.sweep_dir = str(Path(str(launcher.config.hydra.sweep.dir)).absolute())
        logger.info("Code snapshot for these jobs: %s", snapshot.target)
    if launcher.cluster != "slurm":
        for job in jobs:
            logger.info("\t#%d : %s", job.num, job.shown_overrides)
    submitted_at = time.time()
    with inside(snapshot.target) if snapshot is not None else contextlib.nullcontext():
        handles = backend.submit(batch, tasks)
    for task, handle in zip(tasks, handles):
        ref = handle.ref()
        for index in task:
            job = jobs[index]
            job.started = submitted_at  # durations include the time in the queue
            if launcher.cluster == "slurm":
                logger.info("\t#%d : %s -> Slurm job %s", job.num, job.shown_overrides, handle.job_id)
            if ref is not None and job.entry is not None and launcher.cluster == "slurm":
                job.entry.write_job(ref)
    if not waits(params):  # submitted: the jobs' outcomes reach their entries, a re-run collects them
        for job in jobs:
            job.result = not_waited_return(job)
            record_end(launcher.config.hydra.sweep.dir, job.num, "submitted")  # its outcome, when it comes, is this sweep's
        logger.info(not_waited(launcher, jobs, handles))
        return
    counts = {"done": 0, "failed": 0}
    queue = {"asked": 0.0, "running": 0, "why": ""}  # Slurm's view, asked every 5 s: one squeue call

    def on_end(index: int, outcome: engine.Outcome) -> None:
        job = jobs[index]
        job.ended = time.time()
        if outcome.lost is not None:
            engine.record_lost(job.entry, outcome.lost)
            # a packed task may have finished some of its jobs before it died: keep those
            if job.entry is not None and job.entry.has_result():
                job.step.status = "completed"  # type: ignore[union-attr]
                job.result = cached_return(job)
            else:
                job.result = failed_return(job, outcome.lost)
        elif isinstance(outcome.value, BaseException):  # the job's return could not be sent back
            job.result = failed_return(job, outcome.value)
        else:
            job.result = outcome.value
        ret = job.result
        if ret is not None and ret.status == JobStatus.FAILED and job.entry is not None and not job.entry.file_status():
            job.entry.write_error(ret._return_value, "")  # e.g. a failure before the task ran
        record_end(launcher.config.hydra.sweep.dir, job.num, "failed" if ret is not None and ret.status == JobStatus.FAILED else "completed")
        counts["done"] += 1
        counts["failed"] += ret is not None and ret.status == JobStatus.FAILED
        if params.fail_fast and ret is not None and ret.status == JobStatus.FAILED:
            raise FailFast(job)

    def on_pass(waiting: list[int]) -> None:
        if launcher.cluster != "slurm":
            running, why = sum(len(tasks[p]) for p in waiting), ""
        else:
            if time.time() - tp.cast(float, queue["asked"]) > 5 or not waiting:
                queue["running"], queue["why"] = _queue_view(waiting, tasks, handles)
                queue["asked"] = time.time()
            running, why = tp.cast(int, queue["running"]), tp.cast(str, queue["why"])
        progress.update(counts["done"], counts["failed"], min(running, len(jobs) - counts["done"]), why)

    try:
        engine.collect(backend, handles, tasks, on_end, on_pass)
    except FailFast as stop:  # local jobs are stopped by collect; Slurm's are cancelled here
        left = [job for job in jobs if job.result is None]
        arrays = sorted({str(h.job_id).split("_")[0] for h in handles if str(h.job_id)[:1].isdigit()})
        if launcher.cluster == "slurm" and arrays:
            subprocess.run(["scancel", *arrays], capture_output=True, timeout=60, check=False)
        for job in left:  # stopped by us, not failed: nothing recorded, they run next time
            if job.entry is not None and job.entry.file_status() is None:
                job.entry.clear_outcome()
        raise SweepStopped(f"fail_fast: job #{stop.job.num} ({stop.job.shown_overrides}) failed; "
                           f"{len(left)} other job(s) stopped, nothing recorded for them") from None  # fmt: skip
    except KeyboardInterrupt:
        raise SweepStopped(interrupted(launcher, [job for job in jobs if job.result is None], handles)) from None


def waits(params: LauncherParams | LocalLauncherParams) -> bool:
    return getattr(params, "wait", True)  # exca_local's jobs end with the launcher: it always waits


def _queue_view(waiting: tp.Sequence[int], tasks: tp.Sequence[tp.Sequence[int]], handles: tp.Sequence[tp.Any]) -> tuple[int, str]:
    """(jobs running, the commonest reason Slurm gives for the pending ones), e.g. a drained node."""
    import collections

    queue = slurm_queue(handles[p].job_id for p in waiting)
    running = 0
    reasons: collections.Counter[str] = collections.Counter()
    for position in waiting:
        state, reason = queue.get(handles[position].job_id, ("", ""))
        if state == "RUNNING":
            running += len(tasks[position])
        elif state == "PENDING" and reason not in ("", "None"):
            reasons[reason] += len(tasks[position])
    return running, reasons.most_common(1)[0][0] if reasons else ""
