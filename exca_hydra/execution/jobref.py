"""The job reference (job.json): one typed kind per way a job runs, each answering for itself
whether it is alive, how to cancel it and how to describe it. Reading one is pure: small files and
one rate-limited queue query, never a pickle, never a write, never a submission."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import typing as tp
from pathlib import Path

import pydantic

from ..cache import lease
from ..cache.errors import JobFailure
from ..cache.host import hostname, process_alive, start_time
from . import failures, slurm

Backend = tp.Literal["ForkJob", "LocalJob", "SlurmJob", "PullJob"]


class _Ref(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)
    job_id: str = ""
    stderr: str = ""
    started: tp.ClassVar[bool] = True  # False: submitted, never taken up by any process

    def is_alive(self) -> bool | None:
        """True/False; None when it cannot be told from here (another host, no queue answer)."""
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def failure(self, state: str = "") -> JobFailure:
        """Why it ended without a result or an error file: the one place this message is made."""
        return failures.failure_from_job(self.describe(), self.stderr or "?", state or "ended")

    def dump(self) -> dict[str, tp.Any]:
        return self.model_dump(mode="json")


class _Process(_Ref):
    """A process of one host: pid (job_id), host and start time name it, a reused pid included."""

    host: str = ""  # "" in references written before hosts were recorded: this host
    start: str = ""

    @classmethod
    def of(cls, pid: int, **fields: tp.Any) -> tp.Any:
        return cls(job_id=str(pid), host=hostname(), start=start_time(pid), **fields)

    def is_alive(self) -> bool | None:
        return process_alive(self.host, int(self.job_id), self.start) if self.job_id.isdigit() else False

    def cancel(self) -> None:
        if self.is_alive():
            os.kill(int(self.job_id), signal.SIGTERM)


class ForkJob(_Process):
    """A job forked by this host's launcher (exca_local), which records its outcome."""

    backend: tp.Literal["ForkJob"] = "ForkJob"
    folder: str = ""

    def describe(self) -> str:
        return f"local process {self.job_id} on {self.host or 'this host'}"


class LocalJob(_Process):
    """A submitit local job (cluster="local"): a process of this host."""

    backend: tp.Literal["LocalJob"] = "LocalJob"
    folder: str = ""

    def describe(self) -> str:
        return f"local job {self.job_id} on {self.host or 'this host'}"


class SlurmJob(_Ref):
    """A Slurm job or array task; a pull worker's also names the job's own log and its pool."""

    backend: tp.Literal["SlurmJob"] = "SlurmJob"
    folder: str = ""
    log: str = ""
    pool: str = ""

    def is_alive(self) -> bool | None:
        states = slurm.queue_view([self.job_id])
        return None if states is None else states.get(self.job_id, ("", ""))[0] in slurm.UNFINISHED

    def cancel(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True, timeout=60, check=False)

    def describe(self) -> str:
        return f"Slurm job {self.job_id}"


class PullJob(_Ref):
    """A job a pull array was submitted for, not yet taken by a worker: the pool folder (JSON
    files only are read) and the launcher that owns the launch."""

    backend: tp.Literal["PullJob"] = "PullJob"
    started: tp.ClassVar[bool] = False  # a worker that takes it writes its own reference
    folder: str = ""  # the pool
    unit: int = 0
    owner_host: str = ""
    owner_pid: int = -1
    owner_start: str = ""
    placeholder: bool = True

    def owner_alive(self) -> bool | None:
        return process_alive(self.owner_host, self.owner_pid, self.owner_start) if self.owner_pid > 0 else False

    def is_alive(self) -> bool | None:
        pool = Path(self.folder)
        if not pool.is_dir() or (pool / "returns" / f"{self.unit}.pkl").exists():
            return False
        if self.owner_alive():
            return True  # its launcher collects it (and submits follow-ups, records losses)
        claim = pool / "claims" / str(self.unit)
        owner = lease.read(claim)
        if owner == {}:  # a worker died between creating and writing its claim, or is writing it
            return (lease.age(claim) or 0.0) <= lease.LEASE_S
        tasks = [str(owner["task"])] if owner and "task" in owner else self._round_tasks()
        states = slurm.queue_view(tasks)
        if states is None:
            return None
        return any(states.get(t, ("", ""))[0] in slurm.UNFINISHED for t in tasks)

    def _round_tasks(self) -> list[str]:
        tasks: list[str] = []
        for path in sorted((Path(self.folder) / "rounds").glob("*.json")):
            try:
                tasks += [str(t) for t in json.loads(path.read_bytes()[:1 << 20]).get("tasks", [])]
            except (OSError, ValueError, AttributeError):
                continue
        return tasks

    def cancel(self) -> None:
        owner = lease.read(Path(self.folder) / "claims" / str(self.unit))
        if owner and "task" in owner:  # the worker running it
            subprocess.run(["scancel", str(owner["task"])], capture_output=True, timeout=60, check=False)

    def describe(self) -> str:
        return f"pull job {self.unit} of {self.folder}"


class UnknownJob(_Ref):
    """A reference this version cannot read: never alive, never acted on."""

    backend: str = "?"

    def is_alive(self) -> bool | None:
        return False

    def cancel(self) -> None:
        pass

    def describe(self) -> str:
        return f"an unreadable job reference ({self.backend})"


JobRef = tp.Annotated[tp.Union[ForkJob, LocalJob, SlurmJob, PullJob], pydantic.Field(discriminator="backend")]
_ADAPTER: pydantic.TypeAdapter[tp.Any] = pydantic.TypeAdapter(JobRef)


def parse(data: tp.Any) -> ForkJob | LocalJob | SlurmJob | PullJob | UnknownJob:
    try:
        return _ADAPTER.validate_python(data)  # type: ignore[no-any-return]
    except pydantic.ValidationError:
        backend = data.get("backend") if isinstance(data, dict) else None
        return UnknownJob(backend=str(backend)[:40])


def of_submitit(job: tp.Any) -> dict[str, tp.Any]:
    """The reference of a job submitit started."""
    kind = type(job).__name__
    folder, stderr = str(job.paths.folder), str(job.paths.stderr)
    if kind == "LocalJob":
        return LocalJob.of(int(job.job_id), folder=folder, stderr=stderr).dump()  # type: ignore[no-any-return]
    return SlurmJob(job_id=str(job.job_id), folder=folder, stderr=stderr).dump()
