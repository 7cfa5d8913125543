"""Backends of the launcher: run validated jobs as forked local processes or as Slurm arrays,
collect their JobReturns in order, show progress, summarize."""

from __future__ import annotations

import collections
import logging
import os
import pickle
import sys
import time
import traceback
import typing as tp
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus

from . import executor as _exec
from .job import Payload, SlurmJobCall, cached_return, failed_return, run_one
from .store import JobFailure

if tp.TYPE_CHECKING:
    from .launcher import Job, LauncherParams

logger = logging.getLogger("exca_hydra.launcher")


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

    def update(self, done: int, failed: int, running: int, why_pending: str = "") -> None:
        pending = self.total - done - running
        if self.bar is not None:
            self.bar.n = done
            extra = {"why": why_pending} if pending and why_pending else {}
            self.bar.set_postfix(failed=failed, running=running, pending=pending, **extra)
            if done == self.total:
                self.bar.close()
            return
        now = time.time()
        if now - self.last > 5 or done == self.total:
            self.last = now
            why = f" ({why_pending})" if pending and why_pending else ""
            logger.info(
                "Progress: %d/%d done, %d failed, %d running, %d pending%s",
                done, self.total, failed, running, pending, why,
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
            job.result = failed_return(job, JobFailure(f"Job #{job.num} process died ({reason}) before returning"))
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
    import_path = _exec.script_dir()
    for start in range(0, len(tasks), max(1, size)):
        with executor.batch():
            for task in tasks[start : start + size]:
                sub_jobs.append(executor.submit(SlurmJobCall(str(payload_path), task, import_path)))
    for task, sub in zip(tasks, sub_jobs):
        for index in task:
            job = jobs[index]
            logger.info("\t#%d : %s -> Slurm job %s", job.num, job.shown_overrides, sub.job_id)
            if job.entry is not None:
                job.entry.write_job(_exec.job_ref(sub))
    _collect(jobs, tasks, sub_jobs)


RESULT_GRACE_S = 10.0  # a shared file system can show a result file late (submitit waits 15 s per job)


def _task_failure(sub: tp.Any, detail: str) -> JobFailure:
    log = getattr(getattr(sub, "paths", None), "stderr", "?")
    said = _exec.slurm_says(log)
    lines = [f"Slurm job {sub.job_id} ({sub.state}) {detail}", *([f"Slurm: {said}"] if said else []), f"log: {log}"]
    return JobFailure("\n".join(lines))


def _collect(jobs: tp.Sequence[Job], tasks: tp.Sequence[tp.Sequence[int]], sub_jobs: tp.Sequence[tp.Any]) -> None:
    """Wait for every task; a killed task's jobs become FAILED JobReturns, the others are kept."""
    progress = _Progress(len(jobs))
    waiting = set(range(len(tasks)))
    no_result_since: dict[int, float] = {}  # ended tasks whose result file is not visible yet
    done = failed = running = 0
    why_pending = ""
    asked = 0.0
    delay = 0.2
    while waiting:
        positions = sorted(waiting)
        ended = _exec.jobs_done([sub_jobs[p] for p in positions])  # at most one squeue call
        for position in (p for p, is_done in zip(positions, ended) if is_done):
            sub = sub_jobs[position]
            error: JobFailure | None = None
            if not sub.paths.result_pickle.exists():
                if time.time() - no_result_since.setdefault(position, time.time()) < RESULT_GRACE_S:
                    continue
                error = _task_failure(sub, "ended without a result (killed, out of time or memory?)")
            else:
                try:
                    results = sub.result()
                except Exception as e:
                    error = _task_failure(sub, f"failed: {e}")
            waiting.discard(position)
            if error is not None:  # a packed task may have finished some of its jobs before it died: keep those
                results = [
                    cached_return(jobs[i], "completed") if _has_result(jobs[i]) else failed_return(jobs[i], error)
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
        if time.time() - asked > 5 or not waiting:  # Slurm's view of the rest: one squeue call
            asked = time.time()
            running, why_pending = _queue_view(waiting, tasks, sub_jobs)
        progress.update(done, failed, min(running, len(jobs) - done), why_pending)
        if waiting:
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)  # a stat of each result file: cheap, and the tail stays short


def _has_result(job: Job) -> bool:
    return job.entry is not None and job.entry.has_result()


def _queue_view(waiting: tp.Iterable[int], tasks: tp.Sequence[tp.Sequence[int]], sub_jobs: tp.Sequence[tp.Any]) -> tuple[int, str]:
    """(jobs running, the commonest reason Slurm gives for the pending ones), e.g. a drained node."""
    waiting = list(waiting)
    queue = _exec.slurm_queue(str(sub_jobs[p].job_id) for p in waiting)
    running = 0
    reasons: collections.Counter[str] = collections.Counter()
    for position in waiting:
        state, reason = queue.get(str(sub_jobs[position].job_id), ("", ""))
        if state == "RUNNING":
            running += len(tasks[position])
        elif state == "PENDING" and reason not in ("", "None"):
            reasons[reason] += len(tasks[position])
    return running, reasons.most_common(1)[0][0] if reasons else ""


def _outcome(ret: JobReturn | None) -> str:
    """The result, or the error's line (as a traceback's last line shows it), in one short line."""
    if ret is None:
        return "?"
    value = ret._return_value
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else repr(value)
    return _fit((text.strip().splitlines() or [""])[0], 60)  # an error's first line is its "Type: message"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_uid(uid: str | None, width: int = 60) -> str:
    """The uid, shortened in the middle: its trailing hash is what tells two folders apart."""
    if not uid:
        return "-"
    if len(uid) <= width:
        return uid
    head, sep, digest = uid.rpartition("-")
    tail = sep + digest if head else uid[-16:]
    return uid[: max(1, width - len(tail) - 1)] + "…" + tail


def summary(jobs: tp.Sequence[Job]) -> str:
    """End-of-sweep table: number, status, time (or "cached"), uid, overrides, result or the
    error's last line; then where the results are. Past 50 jobs, only those not completed."""
    counts = collections.Counter(
        "cached" if job.from_cache and _ok(job) else "completed" if _ok(job) else "failed" for job in jobs
    )
    head = f"Sweep summary: {len(jobs)} job(s): " + ", ".join(
        f"{counts[k]} {k}" for k in ("completed", "cached", "failed") if counts[k]
    )
    shown = list(jobs)
    if len(shown) > 50:  # a long sweep: list the others only
        shown = [job for job in jobs if not _ok(job)]
        head += "; not completed:" if shown else ""
    rows = []
    for job in shown:
        status = job.result.status.name if job.result is not None else "?"
        seconds = "cached" if job.from_cache else f"{job.ended - job.started:.1f}s" if job.ended else "-"
        overrides = _fit(job.shown_overrides or "(no overrides)", 40)
        rows.append((str(job.num), status, seconds, _short_uid(job.uid), overrides, _outcome(job.result)))
    lines = [head]
    if rows:
        titles = ("#", "status", "time", "uid", "overrides", "result")
        widths = [max(len(title), *(len(row[i]) for row in rows)) for i, title in enumerate(titles)]
        for row in [titles, *rows]:
            cells = [cell.rjust(w) if i in (0, 2) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
    folders = sorted({str(job.entry.folder.parent) for job in jobs if job.entry is not None})
    if folders:
        lines.append("results: " + ", ".join(f"{folder}/<uid>" for folder in folders))
    return "\n".join(lines)


def _ok(job: Job) -> bool:
    return job.result is not None and job.result.status == JobStatus.COMPLETED


def wait_for_others(jobs: tp.Sequence[Job]) -> None:
    """Jobs computed by another process: wait for their outcome in the cache, then return it."""
    from .executor import entry_status

    waiting = list(jobs)
    delay = 0.2
    while waiting:
        still = []
        for job in waiting:
            assert job.entry is not None
            status = entry_status(job.entry)
            if status == "running":
                still.append(job)
            else:
                job.result = cached_return(job, status, "the process computing it stopped without a result")
                job.from_cache = status != "not submitted"  # computed by the other process
        waiting = still
        if waiting:
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
