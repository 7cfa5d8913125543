"""Models for the Slurm tests (tests/test_slurm.py), importable by the Slurm job processes.

Every model writes what it did into the ``marks`` folder given as a field, so the tests can see
when tasks started and ended, independently of the cache.
"""

from __future__ import annotations

import os
import time
import typing as tp
from pathlib import Path

import pydantic

from exca_hydra import TaskInfra


def _slurm_ids() -> dict[str, tp.Any]:
    return {key: os.environ.get(f"SLURM_{key.upper()}") for key in ("job_id", "array_job_id", "array_task_id")}


class Timed(pydantic.BaseModel):
    """Sleeps ``sleep_s``, records its start and end times in ``marks/<x>.txt``."""

    x: int
    marks: str
    sleep_s: float = 0.0
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> dict[str, tp.Any]:
        start = time.time()
        time.sleep(self.sleep_s)
        end = time.time()
        with open(Path(self.marks) / f"{self.x}.txt", "a", encoding="utf8") as f:
            f.write(f"{start} {end}\n")
        return {"x": 10 * self.x, **_slurm_ids()}


class Gated(pydantic.BaseModel):
    """Writes ``marks/started-<x>`` (its pid), then waits for ``marks/release-<x>`` (at most 120 s)."""

    x: int
    marks: str
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        marks = Path(self.marks)
        (marks / f"started-{self.x}").write_text(str(os.getpid()))
        end = time.time() + 120
        while not (marks / f"release-{self.x}").exists() and time.time() < end:
            time.sleep(0.1)
        return self.x


class Forever(pydantic.BaseModel):
    """Sleeps far longer than any test waits (the time limit must stop it)."""

    marks: str
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> str:
        with open(Path(self.marks) / "started", "a", encoding="utf8") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(600)
        return "woke up"


_PROGRESS = {"step": 0}  # the running job's progress (what checkpoint() saves)


class Resumable(pydantic.BaseModel):
    """Counts ``steps`` steps; ``checkpoint()`` saves the step into the uid folder and a
    restarted job resumes from it."""

    marks: str
    steps: int = 40
    step_s: float = 0.25
    infra: TaskInfra = TaskInfra()

    def _checkpoint_file(self) -> Path:
        folder = self.infra.uid_folder(create=True)
        assert folder is not None
        return folder / "progress.txt"

    @infra.apply
    def run(self) -> dict[str, tp.Any]:
        ckpt = self._checkpoint_file()
        start = int(ckpt.read_text()) if ckpt.exists() else 0
        _PROGRESS["step"] = start
        with open(Path(self.marks) / "starts", "a", encoding="utf8") as f:
            f.write(f"{start} {os.getpid()}\n")
        for step in range(start, self.steps):
            time.sleep(self.step_s)
            _PROGRESS["step"] = step + 1
            (Path(self.marks) / "progress").write_text(str(step + 1))
        return {"resumed_from": start, "steps": _PROGRESS["step"], "restarts": os.environ.get("SLURM_RESTART_COUNT")}

    def checkpoint(self) -> None:
        """Called by exca_hydra's checkpoint hook before Slurm requeues the job."""
        self._checkpoint_file().write_text(str(_PROGRESS["step"]))


class Crash(pydantic.BaseModel):
    """``how``: "ok" returns x, "segv" segfaults its process, "exit" leaves it with os._exit(3)."""

    x: int
    how: str = "ok"
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        if self.how == "segv":
            import ctypes

            ctypes.string_at(0)
        if self.how == "exit":
            os._exit(3)
        return self.x
