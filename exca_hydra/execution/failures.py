"""Why a job ended without its result, worded in one place: a forked process that died, was
interrupted or timed out; a pull worker's job; a submitit or Slurm job that ended without a result.
Each message says what ended, how, and where its log is."""

from __future__ import annotations

import typing as tp

from ..cache.store import JobFailure, JobInterrupted
from . import slurm


def process_died(pid: int, reason: str, task: str | None = None, log: str | None = None, worker_log: str | None = None) -> JobFailure:
    """A job's process (forked locally, or by a pull worker in Slurm ``task``) died before returning."""
    where = f"pid {pid}" if task is None else f"pid {pid}, in Slurm task {task}"
    logs = "".join(f"\n{name}: {path}" for name, path in (("log", log), ("worker log", worker_log)) if path is not None)
    return JobFailure(f"The job's process ({where}) died ({reason}) before returning{logs}")


def process_interrupted(pid: int, reason: str) -> JobInterrupted:
    """Ctrl-C or SIGTERM: not the job's outcome (nothing is recorded)."""
    return JobInterrupted(f"The job's process (pid {pid}) was interrupted ({reason})")


def timed_out(pid: int, timeout_min: float, how: str) -> JobFailure:
    return JobFailure(f"The job timed out after {timeout_min:g} min: its process (pid {pid}) was stopped ({how})")


def unpicklable_return(error: BaseException) -> JobFailure:
    return JobFailure(f"The job's return value cannot be pickled: {error}")


def never_taken(rounds: int, folder: tp.Any) -> JobFailure:
    return JobFailure(f"No worker took this job in {rounds} arrays ({folder})")


def submitit_job_lost(job: tp.Any, detail: str) -> JobFailure:
    """Why a submitit job ended without returning: its state or exit code, Slurm's word, its last
    error line (``KeyboardInterrupt`` raised by the task, ``SystemExit: 5``), its log."""
    log = getattr(getattr(job, "paths", None), "stderr", "?")
    said, error = slurm.slurm_says(log), slurm.last_error(log)
    process = getattr(job, "_process", None)
    code = process.poll() if process is not None else None
    state = f"exit code {code}" if code is not None else str(job.state)
    kind = "Local job" if type(job).__name__ == "LocalJob" else "Slurm job"
    lines = [f"{kind} {job.job_id} ({state}) {detail}", *([f"Slurm: {said}"] if said else []),
             *([f"its last error: {error}"] if error else []), f"log: {log}"]  # fmt: skip
    return JobFailure("\n".join(lines))


def pull_worker_lost(task: str, state: str, log: str, what: str = "") -> JobFailure:
    """The Slurm task of a pull worker ended before the job it had claimed finished (``what``:
    another account of it, with the log's last error)."""
    said, error = slurm.slurm_says(log), slurm.last_error(log) if what else ""
    what = what or "the worker running this job, ended before it finished (killed, out of time or memory?)"
    lines = [f"Slurm job {task} ({state}), {what}", *([f"Slurm: {said}"] if said else []),
             *([f"error: {error}"] if error else []), f"log: {log}"]  # fmt: skip
    return JobFailure("\n".join(lines))


# submitit's --signal=USR2@<signal_delay_s>: Slurm's warning before the time limit (or a preemption)
_EARLY_USR2 = (
    ". SIGUSR2 is the warning Slurm sends signal_delay_s before the time limit (or on preemption); it came"
    " before the job could handle it: is timeout_min shorter than signal_delay_s?"
)


def failure_from_job(what: str, log: str, state: str) -> JobFailure:
    """A job that ended without a result or a Python error: what Slurm says and where to look."""
    said, error = slurm.slurm_says(log), slurm.last_error(log)
    why = _EARLY_USR2 if said.endswith("User defined signal 2") else ""
    how = f"its last words: {error}" if error else "killed, out of time or memory?"
    if state in ("", "ended") and "CANCELLED" in said:  # the queue forgot it: Slurm's log says
        state = "CANCELLED"
    shown = "ended" if state in ("", "ended") else f"ended with state {state}"
    return JobFailure(
        f"{what[:1].upper()}{what[1:]} {shown} without a result or a Python error "
        f"({how}).{' Slurm: ' + said if said else ''}{why} Its log: {log}"
    )
