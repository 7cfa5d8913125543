"""Issue 13, "A cache you can trust": an interrupt is not an outcome, an unreadable result does
not abort a sweep, results are loaded only when read, and two sweeps over one cache agree."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra
from exca_hydra.cache.errors import CacheError
from test_launcher import APPS, TRAINER, Ctx, entry

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
    # as a terminal starts it: SIGINT at its default even when the tests run as a background job
    # (a non-interactive shell starts those with SIGINT ignored, and children inherit it: the
    # launcher and its jobs then ignored the test's Ctrl-C and ran to the end)
    return subprocess.Popen(cmd, cwd=ctx.tmp, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_terminal_signals)  # fmt: skip


def _terminal_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        # (program.txt: the task function is written in the script, whose path its entries record)
        assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "program.txt", "uid.yaml"], err
    if how == "sigterm-jobs":
        assert "interrupted" in err, err
    else:  # one short message, no traceback (issue 22)
        assert "Interrupted: 3 local job(s) stopped" in err and "Re-run the same command" in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) < 10, err
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


# ----- 2. an unreadable result fails its job, not the sweep -----
@pytest.mark.parametrize("sweeper", ["exca", "basic"])
def test_a_truncated_result_fails_its_job_and_retry_recomputes_it(tmp_path: Path, sweeper: str) -> None:
    ctx = Ctx(tmp_path)
    args = (*(["hydra/sweeper=exca"] if sweeper == "exca" else []), "lr=0.1,0.2,0.3")
    assert ctx.run(APP, *args).code == 0
    folder = entry(ctx.cache, "app.main,0", model={"name": "conv"}, lr=0.2)
    data = (folder / "result.pkl").read_bytes()
    (folder / "result.pkl").write_bytes(data[: len(data) // 2])
    ctx.log.unlink()
    r = ctx.run(APP, *args)
    out = r.out + r.err
    assert r.code != 0
    assert "Sweep summary: 3 job(s)" in out, out  # the summary, every job in it
    assert str(folder / "result.pkl") in out and "is unreadable" in out, out
    if sweeper == "exca":
        assert "Sweep summary: 3 job(s): 2 cached, 1 failed" in out, out
        assert "Traceback" not in out, out
        assert ctx.lines() == []
        assert ctx.run(APP, *args).code != 0  # recorded: the next cached run says it failed...
        assert ctx.lines() == []
        r = ctx.run(APP, *args, "hydra.sweeper.mode=retry")  # ...and retry recomputes it
    else:  # the launcher alone retries failures
        r = ctx.run(APP, *args)
    assert r.code == 0, r.err
    assert [line.split()[-1] for line in ctx.lines()] == ["lr=0.2"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "outcome.json", "program.txt", "result.pkl", "uid.yaml"]


# ----- 3. results are loaded when read, one at a time -----
def test_the_launcher_holds_one_result_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = APPS / "big" / "app.py"
    ctx = Ctx(tmp_path)
    peak = tmp_path / "peak"
    monkeypatch.setenv("EXCA_TEST_PEAK", str(peak))

    def run(mb: int) -> int:
        r = ctx.run(app, "x=0,1,2", f"mb={mb}")
        assert r.code == 0, r.err
        return int(peak.read_text()) >> 10  # MB

    assert run(0) > 0  # computed
    base = run(0)  # cached, results of no size
    computed, cached = run(50), run(50)
    # three results of 50 MB: holding them all would add 150 MB
    assert computed - base < 75 and cached - base < 75, (base, computed, cached)


# ----- 5. a cached sweep beside a force sweep of some of its jobs -----
def test_a_cached_sweep_waits_for_the_jobs_a_force_sweep_recomputes(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    assert ctx.run(APP, "hydra/sweeper=exca", "lr=0.1,0.2,0.3").code == 0
    release = str(tmp_path / "release-{lr}")
    entries = {lr: entry(ctx.cache, "app.main,0", model={"name": "conv"}, lr=lr) for lr in (0.1, 0.2, 0.6)}
    # a cached sweep: three cached jobs (read at its end) and one to compute, which waits
    cached = _start(ctx, "hydra/sweeper=exca", "lr=0.1,0.2,0.3,0.6", release=release, sweep="cached")
    _wait(lambda: (entries[0.6] / "claim.json").exists() and (tmp_path / "cached" / "3").exists())
    # meanwhile a force sweep recomputes two of them
    force = _start(ctx, "hydra/sweeper=exca", "lr=0.1,0.2", "hydra.sweeper.mode=force", release=release, sweep="force")
    _wait(lambda: all((entries[lr] / "claim.json").exists() and not (entries[lr] / "result.pkl").exists() for lr in (0.1, 0.2)))
    # and a third sweep starts while they are being recomputed
    late = _start(ctx, "hydra/sweeper=exca", "lr=0.1,0.2,0.3", release=release, sweep="late")
    time.sleep(1.0)
    Path(release.format(lr=0.6)).touch()  # the cached sweep ends its own job and reads the others
    time.sleep(1.0)
    for lr in (0.1, 0.2):
        Path(release.format(lr=lr)).touch()
    outputs = {name: proc.communicate(timeout=60) for name, proc in (("cached", cached), ("force", force), ("late", late))}
    for name, proc in (("cached", cached), ("force", force), ("late", late)):
        out = "".join(outputs[name])
        assert proc.returncode == 0, (name, out)
        assert "is not computed" not in out and "FAILED" not in out, (name, out)
    assert "Sweep summary: 4 job(s): 1 completed, 3 cached" in "".join(outputs["cached"])
    assert "Sweep summary: 2 job(s): 2 completed" in "".join(outputs["force"])
    assert "Sweep summary: 3 job(s): 3 cached" in "".join(outputs["late"])
    computed = [line.split()[-1] for line in ctx.lines()[3:]]
    assert sorted(computed) == ["lr=0.1", "lr=0.2", "lr=0.6"]  # each once


# ----- 4. what the summary shows of a result never crashes it -----
class _BadRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr")


def test_the_summary_survives_a_result_whose_repr_raises() -> None:
    from hydra.core.utils import JobReturn, JobStatus

    from exca_hydra.bridge.launch.jobs import HydraJob
    from exca_hydra.bridge.launch.report import summary

    jobs = []
    for num, value in enumerate([_BadRepr(), b"x" * 10_000_000]):
        job = HydraJob(num, [f"x={num}"], None, None)
        job.result = JobReturn(status=JobStatus.COMPLETED, _return_value=value)
        jobs.append(job)
    text = summary(jobs)
    assert "2 job(s): 2 completed" in text
    assert "<_BadRepr: its repr failed: ValueError>" in text
    assert "b'xxxxxxxx" in text and len(max(text.splitlines(), key=len)) < 200


@pytest.mark.parametrize("sweeper", ["exca", "basic"])
def test_a_read_only_cache_with_a_missing_job_is_a_message(tmp_path: Path, sweeper: str) -> None:
    ctx = Ctx(tmp_path)
    assert ctx.run(APP, "lr=0.1").code == 0
    ctx.log.unlink()
    args = [str(APP), "-m", *(["hydra/sweeper=exca"] if sweeper == "exca" else []), "lr=0.1,0.7",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
           "EXCA_HYDRA_CACHE": str(ctx.cache), "EXCA_TEST_LOG": str(ctx.log)}  # fmt: skip
    if os.geteuid() == 0:  # root writes anywhere: a read-only mount, in a mount namespace of its own
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("needs unshare -m (root) for a read-only mount")
        mount = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", mount, str(ctx.cache), sys.executable, *args]
    else:
        for path in [ctx.cache, *ctx.cache.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count("the cache folder is not writable") == 1, proc.stderr
    assert "Cannot compute" in proc.stderr and "hydra.sweeper.mode=read-only" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert ctx.lines() == []


class Slow(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        time.sleep(1.5)
        return self.x * 2


def test_an_entry_cleared_while_its_job_runs_is_not_remade(tmp_path: Path) -> None:
    """Found by the red team (F20): `exca-hydra clear --uid` while the job ran: the job wrote its
    result into a re-made folder without uid.yaml: a ghost `list` and `clear` could not see, which
    stopped the next sweep ("cannot be reused"). Now nothing is written and the next call computes."""
    import threading

    task = Slow(x=4, infra={"folder": tmp_path})
    folder = tp.cast(Path, task.infra.uid_folder())
    remover = threading.Timer(0.7, shutil.rmtree, [folder])
    remover.start()
    with pytest.raises(CacheError, match="was removed while its job ran"):
        task.compute()
    remover.join()
    assert not folder.exists()
    assert Slow(x=4, infra={"folder": tmp_path}).compute() == 8
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "outcome.json", "result.pkl", "uid.yaml"]


def test_a_sweep_job_whose_entry_was_cleared_runs_again(tmp_path: Path) -> None:
    """The same from a sweep (exca_local): the re-run computes the cleared job, it is not blocked."""
    app = APPS / "figures" / "app.py"
    env = {**os.environ, "EXCA_TEST_RELEASE": str(tmp_path / "release")}
    command = [sys.executable, str(app), "-m", "model=a", "lr=0.1,1.0", f"infra.folder={tmp_path / 'cache'}"]
    proc = subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path / 's1'}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait(lambda: len(list((tmp_path / "cache").glob("*/*/outcome.json"))) == 1 and len(list((tmp_path / "cache").glob("*/lr=1.0*"))) == 1)
    (waiting,) = (tmp_path / "cache").glob("*/lr=1.0*")
    shutil.rmtree(waiting)  # cleared while its job waits for the release file
    (tmp_path / "release").write_text("")
    out, err = proc.communicate(timeout=120)
    assert not waiting.exists(), err
    again = subprocess.run([*command, f"hydra.sweep.dir={tmp_path / 's2'}"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0 and "1 cached, 0 running, 1 to run" in again.stdout + again.stderr, again.stdout + again.stderr
    assert (waiting / "result.pkl").exists() and (waiting / "uid.yaml").exists()
