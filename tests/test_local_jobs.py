"""exca_local for hydra-submitit-launcher users (issue 15): submitit_local's keys, timeouts, the
job's environment and id, the task's traceback, code snapshots, output beside the progress bar.

App: tests/apps/jobenv/app.py (plain ``@hydra.main``): each job records what it sees of itself
in $EXCA_TEST_LOG/<job num>.json. Everything is written under tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.bridge.report import Progress
from exca_hydra.cache.store import JobFailure
from exca_hydra.execution import engine
from exca_hydra.execution.backends import ForkBackend

APP = Path(__file__).resolve().parent / "apps" / "jobenv"


class Run(tp.NamedTuple):
    code: int
    out: str
    err: str


class Sweep:
    def __init__(self, tmp: Path, app: Path = APP / "app.py") -> None:
        self.tmp, self.app = tmp, app
        self.seen = tmp / "seen"
        self.seen.mkdir(exist_ok=True)
        self.sweep_dir = tmp / "sweep"
        self.count = 0

    def command(self, *args: str) -> list[str]:
        self.count += 1
        self.sweep_dir = self.tmp / f"sweep{self.count}"
        return [sys.executable, str(self.app), "-m", *args, f"hydra.sweep.dir={self.sweep_dir}"]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env.update(EXCA_TEST_LOG=str(self.seen), **extra)
        return env

    def run(self, *args: str, **env: str) -> Run:
        proc = subprocess.run(self.command(*args), cwd=self.app.parent, env=self.env(**env), capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def job(self, num: int) -> dict[str, tp.Any]:
        return json.loads((self.seen / f"{num}.json").read_text())  # type: ignore[no-any-return]


class _Stubborn:
    """A batch whose job ignores SIGTERM: only SIGKILL stops it."""

    checkpointable = False

    def __len__(self) -> int:
        return 1

    def setup(self) -> None:
        pass

    def run(self, index: int, job_id: str) -> None:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)


def test_fork_backend_kills_a_job_that_ignores_the_timeouts_sigterm(tmp_path: Path) -> None:
    backend = ForkBackend(tmp_path / "returns", limit=1, timeout_min=0.01, grace_s=0.5)
    handles = backend.submit(_Stubborn(), [[0]])
    outcomes: dict[int, engine.Outcome] = {}
    start = time.time()
    engine.collect(backend, handles, [[0]], lambda i, o: outcomes.__setitem__(i, o))
    assert time.time() - start < 10
    failure = str(outcomes[0].lost)
    assert "timed out after 0.01 min" in failure and "SIGKILL 0.5 s later" in failure, failure


