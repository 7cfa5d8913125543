"""Slurm glue: the cluster's array limit, requeue-aware job completion, squeue's view of a
job's tasks, and what Slurm wrote in a job's log about how it ended."""

from __future__ import annotations

import functools
import subprocess
import typing as tp

from ..cache.host import pid_alive

DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """The cluster's MaxArraySize: array indices go from 0 to MaxArraySize - 1, so a job array
    (submitit numbers tasks from 0) holds at most MaxArraySize tasks."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize":
            return int(value.strip())
    return DEFAULT_MAX_ARRAY_SIZE


# slurmctld's states of a job that has not ended (a requeued job is PENDING again)
_SLURM_UNFINISHED = frozenset(
    "PENDING RUNNING REQUEUED REQUEUE_HOLD REQUEUE_FED CONFIGURING COMPLETING SUSPENDED RESIZING "
    "SIGNALING STAGE_OUT STOPPED RESV_DEL_HOLD".split()
)


def jobs_done(jobs: tp.Sequence[tp.Any]) -> list[bool]:
    """submitit's ``done()``, corrected for requeues: sacct shows NODE_FAIL or PREEMPTED for a
    second or so after slurmctld has requeued the job (measured with Slurm 22.05.8). Jobs that
    ended without a result are confirmed with one squeue call, and watched again if requeued."""
    done = []
    unconfirmed = []
    for job in jobs:
        if type(job).__name__ == "LocalJob" and getattr(job, "_process", None) is None:
            # reattached by another process: submitit cannot poll it, its pid can be checked
            job_id = str(job.job_id)
            done.append(job.paths.result_pickle.exists() or not (job_id.isdigit() and pid_alive(int(job_id))))
            continue
        ended = job.done()
        done.append(ended)
        if ended and type(job).__name__ == "SlurmJob" and not job.paths.result_pickle.exists():
            unconfirmed.append(len(done) - 1)
    if unconfirmed:
        queue = slurm_queue(str(jobs[i].job_id) for i in unconfirmed)
        for i in unconfirmed:
            job_id = str(jobs[i].job_id)
            state = queue.get(job_id, ("", ""))[0]
            if state in _SLURM_UNFINISHED:
                watcher = jobs[i].watcher  # submitit caches finished states: forget this one
                getattr(watcher, "_finished", set()).discard(job_id)
                getattr(watcher, "_info_dict", {})[job_id] = {"State": state}
                done[i] = False
    return done


def _task_ids(squeue_id: str) -> list[str]:
    """'12_3' -> ['12_3']; a pending range '12_[4-6,9%2]' -> ['12_4', '12_5', '12_6', '12_9']."""
    if "[" not in squeue_id:
        return [squeue_id]
    array, spec = squeue_id.split("_[", 1)
    ids: list[str] = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        last, _, step = last.partition(":")
        ids.extend(f"{array}_{i}" for i in range(int(first), int(last or first) + 1, int(step or 1)))
    return ids


def slurm_queue(job_ids: tp.Iterable[str]) -> dict[str, tuple[str, str]]:
    """{task id: (state, reason)} of these jobs' arrays ({} when squeue gives no answer)."""
    return queue_view(job_ids) or {}


UNFINISHED = _SLURM_UNFINISHED
QUEUE_EVERY_S = 1.5  # at most one squeue call per array and process in this time
_VIEW: dict[str, tuple[float, dict[str, tuple[str, str]]]] = {}


def queue_view(job_ids: tp.Iterable[str]) -> dict[str, tuple[str, str]] | None:
    """{task id: (state, reason)} of these jobs' arrays, asked of squeue at most once per
    QUEUE_EVERY_S per array (submitit's watcher does the same); None when squeue gives no answer
    (a status read then decides nothing)."""
    import time

    ids = [str(i) for i in job_ids]
    arrays = sorted({i.split("_")[0] for i in ids if i})
    now = time.time()
    stale = [a for a in arrays if now - _VIEW.get(a, (0.0, {}))[0] > QUEUE_EVERY_S]
    if stale:
        try:
            proc = subprocess.run(["squeue", "-h", "-j", ",".join(stale), "-o", "%i|%T|%r"],
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            return None
        fresh: dict[str, dict[str, tuple[str, str]]] = {a: {} for a in stale}
        for line in proc.stdout.splitlines():
            squeue_id, state, reason = (line.split("|", 2) + ["", ""])[:3]
            for task_id in _task_ids(squeue_id.strip()):
                fresh.setdefault(task_id.split("_")[0], {})[task_id] = (state.strip(), reason.strip())
        for array, states in fresh.items():
            _VIEW[array] = (now, states)
    out: dict[str, tuple[str, str]] = {}
    for array in arrays:
        out.update(_VIEW.get(array, (0.0, {}))[1])
    return out


def slurm_says(log: tp.Any) -> str:
    """Slurm's own word in a job's log, e.g. '*** JOB 12 ON vm CANCELLED AT ... DUE TO NODE
    FAILURE ... ***' (sacct's Reason column is 'None' for most ended jobs)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode("utf8", errors="replace")
    except (OSError, TypeError):
        return ""
    lines = tail.splitlines()
    stepd = [line.strip() for line in lines if "slurmstepd" in line and "***" in line]
    # else srun's line on how the step died, e.g. 'srun: error: vm: task 0: User defined signal 2'
    srun = [line.strip() for line in lines if line.startswith("srun: error:") and ": task " in line]
    return (stepd or srun or [""])[-1]


def last_error(log: tp.Any) -> str:
    """The last error line of a job's log (e.g. 'KeyboardInterrupt', an import error before the
    job ran): a job that ended without a result says what it last said."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().decode("utf8", errors="replace").splitlines()
    except (OSError, TypeError):
        return ""
    errors = [line for line in lines if line and not line.startswith((" ", "submitit", "srun:", "Traceback"))]
    return errors[-1] if errors else ""
