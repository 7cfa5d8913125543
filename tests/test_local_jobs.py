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


# ----- 6: the progress bar and the jobs' output -----
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_job_output_goes_above_the_bar_never_into_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)  # the jobs' output and the bar share the terminal
    progress = Progress(3, stream=terminal)
    progress.update(0, 0, 2)
    progress.write("job 0 says hello\njob 0 says bye\n")
    progress.update(1, 0, 2)
    progress.write("job 1 says hello\n")
    progress.update(3, 0, 0)
    pieces = re.split(r"[\r\n]", terminal.getvalue())
    said = [piece.strip() for piece in pieces if "says" in piece]
    assert said == ["job 0 says hello", "job 0 says bye", "job 1 says hello"], pieces
    assert any("sweep" in piece and "1/3" in piece for piece in pieces)  # the bar, drawn in place


def test_without_a_terminal_progress_is_a_line_every_few_seconds(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    progress = Progress(100, stream=io.StringIO(), every=5.0)  # not a terminal: no bar
    progress.write("a job's line\n")  # written as it comes, no bar to clear
    with caplog.at_level("INFO", logger="exca_hydra.launcher"):
        for done in range(100):  # a pass every 0.2 s for 20 s
            progress.update(done, 0, 1)
            clock[0] += 0.2
        progress.update(100, 0, 0)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Progress:")]
    assert 4 <= len(lines) <= 6, lines  # at t = 0, 5, 10, 15 s, and the end
    assert lines[-1].startswith("Progress: 100/100 done")


