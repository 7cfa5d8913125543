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

from exca_hydra.bridge.launch.report import Progress
from exca_hydra.cache.store import JobFailure
from exca_hydra.execution import engine
from exca_hydra.execution.fork import ForkBackend
from exca_hydra.execution.fork_job import JobSetup

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


# ----- 1: submitit_local's keys; timeout_min stops the job -----
def test_submitit_local_keys_are_accepted_and_timeout_min_stops_the_job(tmp_path: Path) -> None:
    sweep = Sweep(tmp_path)
    cache = tmp_path / "cache"
    keys = ["hydra.launcher.timeout_min=0.03", "hydra.launcher.cpus_per_task=1", "hydra.launcher.gpus_per_node=0",
            "hydra.launcher.mem_gb=1", "hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=1",
            "hydra.launcher.name=mine", "hydra.launcher.stderr_to_stdout=false",
            "hydra.launcher.submitit_folder=${hydra.sweep.dir}/.submitit/%j"]  # fmt: skip
    start = time.time()
    r = sweep.run("action=ok,sleep", f"hydra.launcher.folder={cache}", *keys)
    assert time.time() - start < 30  # the sleeping job (600 s) was stopped after ~2 s
    assert r.code != 0
    out = r.out + r.err
    assert re.search(r"^\s+0\s+COMPLETED\s", out, re.M) and re.search(r"^\s+1\s+FAILED\s", out, re.M), out
    assert "timed out after 0.03 min" in out, out
    (error_pkl,) = cache.glob("*/action=sleep*/error.pkl")
    error = pickle.loads(error_pkl.read_bytes())
    assert isinstance(error, JobFailure) and "timed out after 0.03 min" in str(error) and "SIGTERM" in str(error)
    assert sweep.job(0)["hydra_job_id"]  # the other job ran
    r = sweep.run("x=1,2", "hydra.launcher.tasks_per_node=2")  # several processes a job: not here
    assert r.code != 0 and "hydra.launcher.tasks_per_node" in r.err and "exca_slurm" in r.err, r.err


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


class _OneSlow:
    checkpointable = False

    def __len__(self) -> int:
        return 6

    def setup(self) -> None:
        pass

    def run(self, index: int, job_id: str) -> float:
        time.sleep(4 if index == 0 else 0.05)
        return time.time()


@pytest.mark.parametrize("echo", [False, True])
def test_a_free_slot_starts_the_next_job_while_a_long_one_runs(tmp_path: Path, echo: bool) -> None:
    """Found by the timeline (issue 24): a slot freed while another job ran stayed idle until
    every running job had ended, so 2 slots ran jobs in lockstep pairs behind the slowest."""
    setup = JobSetup(ids=[f"t_{i}" for i in range(6)], logs=str(tmp_path / "logs")) if echo else None
    backend = ForkBackend(tmp_path / "returns", limit=2, setup=setup, echo=(lambda text, err: None) if echo else None)
    handles = backend.submit(_OneSlow(), [[i] for i in range(6)])
    ended: dict[int, float] = {}
    start = time.time()
    engine.collect(backend, handles, [[i] for i in range(6)], lambda i, o: ended.__setitem__(i, time.time()))
    short = [ended[i] - start for i in range(1, 6)]
    assert max(short) < 3 < ended[0] - start, (short, ended[0] - start)  # all five beside the slow one


# ----- 2, 3: submitit.JobEnvironment() in the task; hydra.job.id names the job and its log -----
def test_tasks_read_their_job_environment_and_id_the_submitit_way(tmp_path: Path) -> None:
    sweep = Sweep(tmp_path)
    r = sweep.run("x=1,2")
    assert r.code == 0, r.err
    launch_ids = set()
    for num in (0, 1):
        seen = sweep.job(num)
        assert seen["cluster"] == "local"
        launch_id, job_num = re.fullmatch(r"(\d+)_(\d+)", seen["hydra_job_id"]).groups()  # type: ignore[union-attr]
        assert int(job_num) == num and seen["job_id"] == seen["hydra_job_id"]
        launch_ids.add(launch_id)
        job_id = seen["job_id"]
        logs = sweep.sweep_dir / ".submitit" / job_id  # hydra.launcher.submitit_folder, as submitit_local
        assert seen["stdout"] == str(logs / f"{job_id}_0_log.out")
        assert seen["stderr"] == str(logs / f"{job_id}_0_log.err")
        assert f"job {num} says hello" in Path(seen["stdout"]).read_text()
        assert f"job {num} says hello" in r.out  # the job's output reaches the terminal too
    assert len(launch_ids) == 1


# ----- 4: the task's own traceback, without a cache folder too -----
@pytest.mark.parametrize("sweeper", ["basic", "exca"])
def test_the_tasks_traceback_reaches_the_terminal_and_the_job_log_without_a_cache(tmp_path: Path, sweeper: str) -> None:
    sweep = Sweep(tmp_path)
    r = sweep.run("action=fail", "x=1,2", f"hydra/sweeper={sweeper}")
    assert r.code != 0
    frame = re.compile(r'File ".*jobenv/app.py", line \d+, in fail\n\s+raise ZeroDivisionError')
    # the end of the sweep: Hydra's re-raised error (basic) or the sweep's error (exca), with the frames
    end = r.err[r.err.index("its traceback:" if sweeper == "basic" else "Traceback of job #0") :]
    assert frame.search(end) and "ZeroDivisionError: x=1 / 0" in end, r.err
    (log,) = (sweep.sweep_dir / ".submitit").glob("*_0/*_0_0_log.err")  # the job's log
    assert frame.search(log.read_text()), log.read_text()
    hydra_log = (sweep.sweep_dir / "0" / "app.log").read_text()  # Hydra's job log
    assert frame.search(hydra_log) and "ZeroDivisionError: x=1 / 0" in hydra_log, hydra_log


# ----- 5: queued jobs run the code of the launch -----
def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "snap_code.py").write_text('VALUE = "old"\n')
    return project


@pytest.mark.parametrize("copied", [True, False])
def test_workdir_snapshot_keeps_later_edits_from_jobs(tmp_path: Path, copied: bool) -> None:
    project = _project(tmp_path)
    sweep = Sweep(tmp_path, project / "app.py")
    release = tmp_path / "release"
    args = ["action=lazy", "x=1,2", "hydra.launcher.array_parallelism=1"]
    args += ["hydra.launcher.workdir.copied=[.]"] if copied else []
    proc = subprocess.Popen(sweep.command(*args), cwd=project, env=sweep.env(EXCA_TEST_RELEASE=str(release)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        for _ in range(300):  # job 0 runs; job 1 waits for a free slot
            if Path(f"{release}.waiting").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        (project / "snap_code.py").write_text('VALUE = "new"\n')  # the user edits the code
        release.write_text("go")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    expected = "old" if copied else "new"
    assert [sweep.job(num)["code"] for num in (0, 1)] == [expected, expected]
    if copied:
        (snapshot,) = (sweep.sweep_dir / ".exca" / "code").iterdir()
        assert sweep.job(0)["cwd"] == str(snapshot) and (snapshot / "snap_code.py").read_text() == 'VALUE = "old"\n'
        assert (sweep.sweep_dir / "1" / ".hydra" / "config.yaml").exists()  # outputs stay in the sweep dir
        assert not list(snapshot.glob("**/.hydra"))


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


def test_a_terminal_sees_job_output_on_its_own_lines_during_a_sweep(tmp_path: Path) -> None:
    """End to end on a pseudo-terminal: the bar is drawn while the jobs print."""
    import fcntl
    import pty
    import struct
    import termios

    sweep = Sweep(tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    proc = subprocess.Popen(sweep.command("x=1,2", "delay=1.0"), cwd=APP, env=sweep.env(), stdin=slave,
                            stdout=slave, stderr=slave)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the app ended: no writer left
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text
    pieces = re.split(r"[\r\n]", text)
    said = [piece.strip() for piece in pieces if "says hello" in piece]
    assert sorted(said) == ["job 0 says hello", "job 1 says hello"], pieces
    assert any("sweep" in piece and "running" in piece for piece in pieces), pieces  # the bar was drawn


class Stops(__import__("pydantic").BaseModel):
    how: str
    infra: __import__("exca_hydra").TaskInfra = __import__("exca_hydra").TaskInfra()

    @infra.apply
    def run(self) -> int:
        import sys

        if self.how == "exit":
            sys.exit(5)
        raise KeyboardInterrupt


@pytest.mark.parametrize("how, said", [("exit", "SystemExit(5)"), ("interrupt", "KeyboardInterrupt")])
def test_a_job_that_stops_itself_says_how(tmp_path: Path, how: str, said: str) -> None:
    """Issue 21: a task's own sys.exit(5) or KeyboardInterrupt under cluster="local" is named in
    the failure (not "killed, out of time or memory?")."""
    obj = Stops(how=how, infra={"folder": tmp_path / "cache", "cluster": "local"})
    with pytest.raises(Exception) as info:
        obj.run()
    assert said in str(info.value) and "killed, out of time or memory" not in str(info.value), str(info.value)
