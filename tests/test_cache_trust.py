"""Issue 13, "A cache you can trust": an interrupt is not an outcome, an unreadable result does
not abort a sweep, results are loaded only when read, and two sweeps over one cache agree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra
from test_launcher import TRAINER, Ctx, entry

APP = TRAINER / "app.py"


def _wait(condition: tp.Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _start(ctx: Ctx, *args: str, release: str | None = None, sweep: str = "sweep0") -> subprocess.Popen[str]:
    """The trainer app as a sweep of its own process group (as a terminal runs it); its jobs wait
    for ``release`` (a file per job, ``{lr}`` in its name) when given."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(EXCA_HYDRA_CACHE=str(ctx.cache), EXCA_TEST_LOG=str(ctx.log))
    if release:
        env["EXCA_TEST_RELEASE"] = release
    cmd = [sys.executable, str(APP), "-m", *args, f"hydra.sweep.dir={ctx.tmp / sweep}"]
    return subprocess.Popen(cmd, cwd=ctx.tmp, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


# ----- 1. an interrupt is not an outcome -----
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-jobs"])
def test_an_interrupted_sweep_records_nothing_and_the_rerun_computes(tmp_path: Path, how: str) -> None:
    ctx = Ctx(tmp_path)
    lrs = (0.1, 0.2, 0.3)
    proc = _start(ctx, "hydra/sweeper=exca", "lr=0.1,0.2,0.3", "hydra.launcher.array_parallelism=3",
                  release=str(tmp_path / "never"))
    entries = [entry(ctx.cache, "app.main,0", model={"name": "conv"}, lr=lr) for lr in lrs]
    jobs = [tmp_path / "sweep0" / str(num) / ".hydra" / "overrides.yaml" for num in range(3)]
    _wait(lambda: all(job.exists() for job in jobs) and len(_children(proc.pid)) == 3)
    time.sleep(0.3)  # the tasks are waiting for their release file
    if how == "ctrl-c":  # the terminal sends SIGINT to the whole process group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # the user stops the jobs' processes; the launcher goes on
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out + err
    for folder in entries:  # nothing recorded: no result, no error, no claim left behind
        assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "uid.yaml"], err
    if how == "sigterm-jobs":
        assert "interrupted" in err, err
    assert ctx.lines() == []
    r = ctx.run(APP, "hydra/sweeper=exca", "lr=0.1,0.2,0.3")
    assert r.code == 0, r.err
    assert sorted(line.split()[-1] for line in ctx.lines()) == [f"lr={lr}" for lr in lrs]  # run again
    assert "3 job(s): 3 completed" in r.err + r.out


INTERRUPT = [True]


class Interruptible(pydantic.BaseModel):
    x: int
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        if INTERRUPT[0]:
            raise KeyboardInterrupt
        return self.x * 2


def test_a_keyboard_interrupt_in_python_is_not_cached(tmp_path: Path) -> None:
    INTERRUPT[0] = True
    task = Interruptible(x=3, infra={"folder": tmp_path})
    with pytest.raises(KeyboardInterrupt):
        task.compute()
    folder = task.infra.uid_folder()
    assert folder is not None and sorted(p.name for p in folder.iterdir()) == ["config.yaml", "uid.yaml"]
    assert task.infra.status() == "not submitted"
    INTERRUPT[0] = False
    again = Interruptible(x=3, infra={"folder": tmp_path})
    assert again.compute() == 6  # computed, not the interrupt re-raised from the cache
    assert again.infra.status() == "completed"
