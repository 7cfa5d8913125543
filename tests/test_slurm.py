"""Tests on a real Slurm cluster (issue 5, item 3): real sbatch/squeue/sacct/scancel, no mocks.

Start the one-node cluster as root with ``scripts/slurm-up``. Without a reachable cluster these
tests skip, or fail when $CI or $EXCA_REQUIRE_SLURM is set (fixture ``slurm_cluster`` in
conftest.py). Models run by the core-API tests live in tests/slurm_models.py (importable by the
job processes); the launcher tests run tests/apps/trainer/app.py in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pytest
import yaml
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from exca_hydra.execution import slurm as _exec
from exca_hydra.cache.store import JobFailure
from exca_hydra.cache.uid import uid_config, uid_string

from slurm_models import Forever, Gated, Resumable, Timed  # noqa: E402  (tests/ is on sys.path)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TRAINER = Path(__file__).resolve().parent / "apps" / "trainer"
if str(TRAINER) not in sys.path:
    sys.path.insert(0, str(TRAINER))

from launcher_models import Trainer  # noqa: E402


# ----- helpers -----
def wait_for(predicate: tp.Callable[[], tp.Any], timeout: float, what: str, every: float = 0.25) -> tp.Any:
    end = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > end:
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def squeue_state(job_id: str) -> str:
    """'STATE|REASON' of a job in slurmctld's memory ('' once it is gone)."""
    proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], capture_output=True, text=True)
    return proc.stdout.strip()


def scancel(*job_ids: str) -> None:
    """Cleanup: cancel our own jobs only (never another user's or another test's)."""
    ids = sorted({str(j) for j in job_ids if j})
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def job_ref(task: tp.Any) -> dict[str, tp.Any]:
    folder = task.infra.uid_folder()
    return json.loads((folder / "job.json").read_text())


def infra(tmp_path: Path, **kwargs: tp.Any) -> dict[str, tp.Any]:
    return {"folder": str(tmp_path / "cache"), "cluster": "slurm", **kwargs}


def marks_dir(tmp_path: Path) -> str:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    return str(marks)


def max_overlap(intervals: tp.Sequence[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # ends first on ties
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def _alive(pid: int) -> bool:  # the Slurm node is this machine
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_pids(path: Path) -> None:
    if path.exists():
        for pid in path.read_text().split():
            _kill_own(int(pid), "submitit")


def _kill_own(pid: int, marker: str) -> None:
    """SIGKILL a job process of this test (the Slurm node is this machine), if still there."""
    try:
        if marker in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, 9)
    except (OSError, ValueError):
        pass


# ----- 1: core API with cluster="slurm" -----
def test_single_job_result(tmp_path: Path) -> None:
    task = Timed(x=7, marks=marks_dir(tmp_path), infra=infra(tmp_path))
    out = task.compute()
    assert out["x"] == 70
    assert out["job_id"] and out["array_job_id"] is None  # ran in a Slurm job, not an array
    ref = job_ref(task)
    assert ref["backend"] == "SlurmJob" and ref["job_id"] == out["job_id"]
    assert Path(ref["stderr"]).exists()
    assert task.infra.status() == "completed"
    import exca_hydra  # the results table names the Slurm job and the node that ran it

    (row,) = exca_hydra.results(task.infra.uid_folder())
    assert row["job_id"] == out["job_id"] and row["host"] and row["finished"]


def test_job_array_is_one_array_with_parallelism(tmp_path: Path) -> None:
    marks = marks_dir(tmp_path)
    # slurm_jobs_per_task=1: this test is about one array task per item (pull workers: test_slurm_pull.py)
    base = Timed(x=0, marks=marks, infra=infra(tmp_path, slurm_array_parallelism=2, slurm_jobs_per_task=1))
    tasks = [base.infra.clone_obj(x=x, sleep_s=2.0) for x in range(5)]
    refs: list[dict[str, tp.Any]] = []
    try:
        with base.infra.job_array() as array:
            array.extend(tasks)
        refs = [job_ref(t) for t in tasks]
        array_ids = {r["job_id"].split("_")[0] for r in refs}
        assert len(array_ids) == 1, refs  # one sbatch --array for the 5 items
        assert sorted(int(r["job_id"].split("_")[1]) for r in refs) == list(range(5))
        array_id = array_ids.pop()
        results = [t.compute() for t in tasks]
    except BaseException:  # only on failure: a finished task's job may still be closing its step
        scancel(*(r["job_id"] for r in refs))
        raise
    assert [r["x"] for r in results] == [0, 10, 20, 30, 40]
    assert {r["array_job_id"] for r in results} == {array_id}
    intervals = []
    for x in range(5):
        lines = (Path(marks) / f"{x}.txt").read_text().splitlines()
        assert len(lines) == 1  # each item computed once
        start, end = map(float, lines[0].split())
        intervals.append((start, end))
    assert max_overlap(intervals) <= 2, intervals  # slurm_array_parallelism=2 honoured
    def accounted() -> list[str]:
        return subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", array_id, "-o", "JobID,State"], capture_output=True, text=True, check=True
        ).stdout.split()

    wait_for(lambda: all(line.endswith("|COMPLETED") for line in accounted()), 30, "Slurm to account the tasks")
    acct = accounted()
    assert len(acct) == 5 and all(line.endswith("|COMPLETED") for line in acct), acct
    # cached: a second call (and a second job_array) submits nothing and recomputes nothing
    submitted = [r["submitted_at"] for r in refs]
    again = [base.infra.clone_obj(x=x, sleep_s=2.0) for x in range(5)]
    with base.infra.job_array() as array:
        array.extend(again)
    assert [t.compute() for t in again] == results
    assert [job_ref(t)["submitted_at"] for t in again] == submitted
    assert all(len((Path(marks) / f"{x}.txt").read_text().splitlines()) == 1 for x in range(5))


# ----- 5: scancel of one running array task -----
def test_scancel_one_array_task(tmp_path: Path) -> None:
    marks = Path(marks_dir(tmp_path))
    # one task per job (the pull workers' version: test_slurm_pull.py)
    base = Gated(x=0, marks=str(marks), infra=infra(tmp_path, slurm_jobs_per_task=1))
    tasks = [base.infra.clone_obj(x=x) for x in range(3)]
    with base.infra.job_array() as array:
        array.extend(tasks)
    ids = [job_ref(t)["job_id"] for t in tasks]
    try:
        wait_for(lambda: all((marks / f"started-{x}").exists() for x in range(3)), 60, "the 3 tasks to start")
        assert [t.infra.status() for t in tasks] == ["running"] * 3
        subprocess.run(["scancel", ids[1]], check=True)
        wait_for(lambda: tasks[1].infra.status() == "failed", 90, f"status() of cancelled task {ids[1]}", every=1)
        assert [tasks[0].infra.status(), tasks[2].infra.status()] == ["running", "running"]
        for x in (0, 2):
            (marks / f"release-{x}").write_text("go")
        assert [tasks[0].compute(), tasks[2].compute()] == [0, 2]
    finally:
        scancel(*ids)
        # belt and braces: scripts/slurm-up uses proctrack/pgid so Slurm kills the whole job,
        # but never leave a test's orphan behind
        for x in range(3):
            started = marks / f"started-{x}"
            if started.exists() and not (marks / f"release-{x}").exists():
                _kill_own(int(started.read_text()), "submitit")
    with pytest.raises(JobFailure) as info:
        tasks[1].compute()
    message = str(info.value)
    assert "CANCELLED" in message and ids[1] in message, message
    log = re.search(r"Its log: (\S+)", message)
    assert log and Path(log.group(1)).exists(), message
    assert [t.infra.status() for t in tasks] == ["completed", "failed", "completed"]


# ----- 6: a timeout (submitit's quick path: USR2 right away for timeout_min=1) -----
# slurm_use_srun=True: Slurm's --signal reaches job steps only; without srun the Python process
# is in the batch step and never gets USR2 (the job then ends by a hard TIMEOUT after ~60-90 s).
def test_timeout_is_reported_failed(tmp_path: Path) -> None:
    marks = Path(marks_dir(tmp_path))
    task = Forever(marks=str(marks), infra=infra(tmp_path, timeout_min=1, slurm_use_srun=True))
    job = task.infra.job()
    try:
        wait_for(lambda: task.infra.status() != "running", 120, "the timed-out job to end", every=1)
    finally:
        scancel(job.job_id)
        _kill_pids(marks / "started")
    assert task.infra.status() == "failed"
    # submitit's USR2 (sent at Slurm's first check after the start: timeout_min=1 is shorter than
    # the 90 s signal delay) normally reaches the step's handler and ends the job; when that check
    # comes before the step exists, Slurm kills the job at its limit; when it comes before Python
    # installed its handler, the signal kills the step: each way the report says why
    with pytest.raises(Exception, match="timed-out and not checkpointable|DUE TO TIME LIMIT|"
                       "User defined signal 2. SIGUSR2 is the warning Slurm sends signal_delay_s before the time limit"):
        task.compute()
    # not requeued: without checkpoint() a rerun would only time out again
    assert len((marks / "started").read_text().split()) == 1
    assert squeue_state(job.job_id) == "" or not squeue_state(job.job_id).startswith("PENDING")


# ----- 7: preemption, checkpoint, requeue, resume -----
def test_requeue_with_checkpoint_resumes(tmp_path: Path) -> None:
    marks = Path(marks_dir(tmp_path))
    # timeout_min=30: submitit counts the signal as a preemption, not a timeout;
    # slurm_use_srun=True: the signals reach the Python process (see the timeout test)
    task = Resumable(marks=str(marks), infra=infra(tmp_path, timeout_min=30, slurm_use_srun=True))
    job = task.infra.job()
    try:
        progress = marks / "progress"
        wait_for(lambda: progress.exists() and int(progress.read_text() or 0) >= 3, 60, "3 steps of progress")
        # a preemption, as submitit's job._interrupt() sends it but without its SIGTERM (which
        # submitit only logs): that SIGTERM can be delivered after the USR2 and kill the
        # `scontrol requeue` that submitit's USR2 handler runs
        subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
        # submitit requeues through `scontrol requeue`: pending ~120 s unless told to start now
        wait_for(lambda: squeue_state(job.job_id).startswith("PENDING"), 60, "the requeued job to be pending")
        assert task.infra.status() == "running"  # a requeued job is not a failed one
        # slurmd refuses to relaunch a job in the same second its previous run was killed
        # ("Job credential revoked"): let the first run end, then start the requeued one now
        first_pid = int((marks / "starts").read_text().split()[1])
        wait_for(lambda: not _alive(first_pid), 30, "the first run to end")
        time.sleep(2)
        subprocess.run(["scontrol", "update", f"JobId={job.job_id}", "StartTime=now"], check=True)
        out = task.run()
    finally:
        scancel(job.job_id)
    starts = [int(line.split()[0]) for line in (marks / "starts").read_text().splitlines()]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 3, starts  # resumed, not restarted
    assert out["resumed_from"] == starts[1] and out["steps"] == 40
    assert out["restarts"] == "1"
    assert task.infra.status() == "completed"


SCRIPT_MODELS = """
import pydantic
from exca_hydra import TaskInfra

class Square(pydantic.BaseModel):
    x: int
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        return self.x ** 2
"""

SCRIPT = """
import sys
from models_next_to_script import Square

task = Square(x=int(sys.argv[1]), infra={"folder": sys.argv[2], "cluster": "slurm"})
print("result", task.compute(), task.infra.job().job_id)
"""


def test_a_script_run_from_elsewhere_finds_its_own_modules_on_slurm(tmp_path: Path) -> None:
    """``python project/run.py`` from another folder: Python puts project/ on the script's path,
    not on the job's (its cwd is the submission's); the classes next to the script still unpickle."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "models_next_to_script.py").write_text(SCRIPT_MODELS)
    (project / "run.py").write_text(SCRIPT)
    env = dict(os.environ)
    assert str(project) not in env.get("PYTHONPATH", "")
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, str(project / "run.py"), "7", str(cache)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result, job_id = proc.stdout.split()[1:]
    assert result == "49" and re.fullmatch(r"\d+", job_id), proc.stdout  # computed by a Slurm job


# ----- 2, 3, 4: the exca_slurm launcher on tests/apps/trainer -----
class App:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache = tmp / "cache"
        self.log = tmp / "ran.txt"
        self.sweep_dir = tmp / "sweep"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        # no PYTHONPATH for the app's folder, and the app runs from tmp: the Slurm tasks import
        # launcher_models (next to app.py) from the folder the launcher ran the script from
        env.update(EXCA_HYDRA_CACHE=str(self.cache), EXCA_TEST_LOG=str(self.log), **extra)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(TRAINER / "app.py"), "-m", "hydra/launcher=exca_slurm",
                "hydra.launcher.timeout_min=5", *args, f"hydra.sweep.dir={self.sweep_dir}"]  # fmt: skip

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.tmp, env=self.env(**env), capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """The sweep in the background; its output merged into .stdout."""
        return subprocess.Popen(self.command(*args), cwd=self.tmp, env=self.env(**env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def lines(self) -> list[str]:
        return sorted(self.log.read_text().splitlines()) if self.log.exists() else []

    def entry(self, **fields: tp.Any) -> Path:
        return self.cache / "app.main,0" / uid_string(uid_config(Trainer(**fields)))


def test_launcher_results_outputs_and_logs(tmp_path: Path) -> None:
    app = App(tmp_path)
    r = app.run("model=conv,transformer", "lr=0.1")
    assert r.returncode == 0, r.stderr
    assert app.lines() == ["0 ConvCfg lr=0.1", "1 TransformerCfg lr=0.1"]
    out = r.stdout + r.stderr
    assert re.search(r"Sweep summary:", out), out
    for num in (0, 1):
        assert re.search(rf"^\s+{num}\s+COMPLETED\s", out, re.M), out
        hydra_dir = app.sweep_dir / str(num) / ".hydra"
        assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= {p.name for p in hydra_dir.iterdir()}
    assert yaml.safe_load((app.sweep_dir / "1" / ".hydra" / "overrides.yaml").read_text()) == [
        "model=transformer", "lr=0.1"]  # fmt: skip
    refs = []
    for model, line in ((("conv"), "0 ConvCfg lr=0.1"), ("transformer", "1 TransformerCfg lr=0.1")):
        entry = app.entry(model={"name": model}, lr=0.1)
        assert _load(entry / "result.pkl") == line
        refs.append(json.loads((entry / "job.json").read_text()))
    assert {r["backend"] for r in refs} == {"SlurmJob"}
    assert len({r["job_id"].split("_")[0] for r in refs}) == 1  # one array
    logs = list((app.sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and all(Path(r["stderr"]).exists() for r in refs), logs


def _load(path: Path) -> tp.Any:
    import pickle

    with path.open("rb") as f:
        return pickle.load(f)


def test_sweep_larger_than_max_array_size_is_split(tmp_path: Path) -> None:
    app = App(tmp_path)
    lrs = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8]
    r = app.run("lr=" + ",".join(map(str, lrs)), "hydra.launcher.max_array_size=4", "hydra.launcher.jobs_per_task=1")
    assert r.returncode == 0, r.stderr
    assert len(app.lines()) == 7
    ids = []
    for lr in lrs:
        entry = app.entry(model={"name": "conv"}, lr=lr)
        assert (entry / "result.pkl").exists()
        ids.append(json.loads((entry / "job.json").read_text())["job_id"])
    arrays: dict[str, list[int]] = {}
    for job_id in ids:
        array, task = job_id.split("_")
        arrays.setdefault(array, []).append(int(task))
    # MaxArraySize=4 allows array indices 0..3: 7 jobs -> arrays of 4 and 3 tasks
    assert sorted(sorted(tasks) for tasks in arrays.values()) == [[0, 1, 2], [0, 1, 2, 3]], ids


def test_max_array_size_read_from_scontrol() -> None:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    expected = int(re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.M).group(1))  # type: ignore[union-attr]
    _exec.max_array_size.cache_clear()
    assert _exec.max_array_size() == expected
    if os.environ.get("EXCA_SLURM_MAX_ARRAY_SIZE"):  # the cluster of scripts/slurm-up
        assert expected == int(os.environ["EXCA_SLURM_MAX_ARRAY_SIZE"])


def test_failed_and_killed_tasks_keep_the_others(tmp_path: Path) -> None:
    app = App(tmp_path)
    r = app.run("lr=0.1,0.5,0.25,0.2", "hydra.launcher.jobs_per_task=1")  # about tasks (pull: test_slurm_pull.py)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "lr=0.5 diverges" in r.stderr  # Hydra re-raises the first failure after the sweep
    for num, status in ((0, "COMPLETED"), (1, "FAILED"), (2, "FAILED"), (3, "COMPLETED")):
        assert re.search(rf"^\s+{num}\s+{status}\s", out, re.M), out
    assert app.lines() == ["0 ConvCfg lr=0.1", "3 ConvCfg lr=0.2"]
    for lr in (0.1, 0.2):
        assert (app.entry(model={"name": "conv"}, lr=lr) / "result.pkl").exists()
    failed = app.entry(model={"name": "conv"}, lr=0.5)
    assert "lr=0.5 diverges" in (failed / "error.txt").read_text()
    killed = app.entry(model={"name": "conv"}, lr=0.25)
    assert not (killed / "result.pkl").exists()
    error = _load(killed / "error.pkl")
    assert isinstance(error, JobFailure) and "FAILED" in str(error) and "log:" in str(error), error


# ----- Hydra's own suites, with exca_slurm -----
@pytest.mark.parametrize("launcher_name, overrides", [("exca_slurm", ["hydra.launcher.timeout_min=5"])])
class TestExcaSlurmLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=exca_slurm", "hydra.launcher.timeout_min=5"])]
)
class TestExcaSlurmLauncherIntegration(IntegrationTestSuite):
    pass


def test_jobs_per_task_packs_short_jobs(tmp_path: Path) -> None:
    app = App(tmp_path)
    lrs = [0.1, 0.2, 0.3, 0.4, 0.6]
    r = app.run("lr=" + ",".join(map(str, lrs)), "hydra.launcher.jobs_per_task=2")
    assert r.returncode == 0, r.stderr
    assert len(app.lines()) == 5
    ids = [json.loads((app.entry(model={"name": "conv"}, lr=lr) / "job.json").read_text())["job_id"] for lr in lrs]
    # 5 jobs, 2 a task: one array of 3 tasks, jobs 0-1, 2-3 and 4
    assert ids == [ids[0], ids[0], ids[2], ids[2], ids[4]] and len(set(ids)) == 3, ids
    assert len({job_id.split("_")[0] for job_id in ids}) == 1


def test_a_killed_packed_task_keeps_its_finished_jobs(tmp_path: Path) -> None:
    app = App(tmp_path)
    r = app.run("lr=0.1,0.25,0.2", "hydra.launcher.jobs_per_task=3")  # lr=0.25 kills the process
    assert r.returncode != 0
    assert (app.entry(model={"name": "conv"}, lr=0.1) / "result.pkl").exists()
    assert not (app.entry(model={"name": "conv"}, lr=0.2) / "result.pkl").exists()  # never ran
    out = r.stdout + r.stderr
    for num, status in ((0, "COMPLETED"), (1, "FAILED"), (2, "FAILED")):
        assert re.search(rf"^\s+{num}\s+{status}\s", out, re.M), out


def test_killed_launcher_attaches_to_its_running_jobs_when_run_again(tmp_path: Path) -> None:
    app = App(tmp_path)
    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(EXCA_HYDRA_CACHE=str(app.cache), EXCA_TEST_LOG=str(app.log), EXCA_TEST_RELEASE=str(release))

    def launch(sweep_dir: Path) -> subprocess.Popen[str]:
        cmd = [sys.executable, str(TRAINER / "app.py"), "-m", "hydra/launcher=exca_slurm", "hydra/sweeper=exca",
               "hydra.launcher.timeout_min=5", "hydra.launcher.jobs_per_task=1", "lr=0.1,0.2,0.3", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    entries = [app.entry(model={"name": "conv"}, lr=lr) for lr in (0.1, 0.2, 0.3)]
    first = launch(tmp_path / "first")
    ids: list[str] = []
    try:
        wait_for(lambda: all((e / "job.json").exists() for e in entries), 60, "the first launch to submit")
        ids = [json.loads((e / "job.json").read_text())["job_id"] for e in entries]
        first.kill()  # the launcher dies; its Slurm jobs go on
        first.wait()
        second = launch(tmp_path / "second")
        time.sleep(3)
        release.write_text("go")
        out, _ = second.communicate(timeout=120)
    except BaseException:
        scancel(*ids)
        first.kill()
        raise
    assert second.returncode == 0, out
    assert "3 running" in out, out  # attached to the first launch's jobs...
    assert not (tmp_path / "second" / ".submitit").exists()  # ...and submitted nothing
    assert sorted(line.split()[-1] for line in app.lines()) == ["lr=0.1", "lr=0.2", "lr=0.3"]  # each ran once
    assert [json.loads((e / "job.json").read_text())["job_id"] for e in entries] == ids


def test_a_cached_batch_under_another_sweeper_submits_nothing(tmp_path: Path) -> None:
    """Issue 22: under Hydra's basic sweeper, exca_slurm plans each batch itself: cached jobs are
    read back here (each still gets its job folder and .hydra/), no sbatch for them."""
    app = App(tmp_path)
    r = app.run("model=conv,transformer", "lr=0.1")
    assert r.returncode == 0, r.stderr
    assert len(app.lines()) == 2
    app.sweep_dir = tmp_path / "again"
    r = app.run("model=conv,transformer", "lr=0.1", "hydra/sweeper=basic")
    assert r.returncode == 0, r.stderr
    assert len(app.lines()) == 2  # nothing computed again
    assert not list(app.sweep_dir.glob(".submitit/*")) and "Slurm job" not in r.stdout + r.stderr  # nothing submitted
    for num in (0, 1):
        assert (app.sweep_dir / str(num) / ".hydra" / "config.yaml").exists()


def test_a_submission_slurm_refuses_is_one_line(tmp_path: Path) -> None:
    """Issue 21: sbatch refusing the array (a partition that does not exist) is Slurm's own
    message in one line, no traceback, and no job outcome recorded."""
    app = App(tmp_path)
    r = app.run("model=conv", "lr=0.3", "hydra.launcher.partition=nonexistent")
    assert r.returncode != 0
    assert "Slurm refused the submission" in r.stderr and "invalid partition" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    entry = app.entry(model={"name": "conv"}, lr=0.3)
    assert not any((entry / name).exists() for name in ("error.pkl", "outcome.json", "job.json", "claim.json"))


def test_a_short_time_limit_keeps_slurms_warning_after_the_start(tmp_path: Path) -> None:
    """Issue 22: timeout_min=1 with the default signal_delay_s=120 used to stop every pull worker
    at its start ("ended without taking any job"); the delay is adapted, and the log says so."""
    app = App(tmp_path)
    r = app.run("model=conv,transformer", "lr=0.1,0.2", "hydra.launcher.timeout_min=1")
    assert r.returncode == 0, r.stderr
    assert len(app.lines()) == 4
    assert "using signal_delay_s=15" in r.stdout + r.stderr, r.stdout + r.stderr


def test_ctrl_c_says_what_is_left_on_slurm_and_how_to_go_on(tmp_path: Path) -> None:
    """Issue 22: Ctrl-C of an exca_slurm sweep prints one short message (no traceback): how many
    jobs are still queued or running, their arrays, how to re-attach (re-run) or cancel."""
    app = App(tmp_path)
    release = tmp_path / "release"
    entries = [app.entry(model={"name": "conv"}, lr=lr) for lr in (0.1, 0.2)]
    cmd = app.command("lr=0.1,0.2", "hydra/sweeper=exca", "hydra.launcher.jobs_per_task=1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=app.env(EXCA_TEST_RELEASE=str(release)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    ids: list[str] = []
    try:
        wait_for(lambda: all((e / "job.json").exists() for e in entries), 60, "the launch to submit")
        ids = [json.loads((e / "job.json").read_text())["job_id"] for e in entries]
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        scancel(*ids)
        proc.kill()
    assert proc.returncode != 0
    array = ids[0].split("_")[0]
    assert "Interrupted: 2 job(s) still queued or running on Slurm" in err and f"scancel {array}" in err, err
    assert "Re-run the same command" in err and "Traceback" not in err, err


def test_fail_fast_cancels_the_rest_on_slurm(tmp_path: Path) -> None:
    """Issue 22: hydra.launcher.fail_fast=true on Slurm: the first failure scancels the others
    (waiting for a release that never comes), nothing is recorded for them."""
    app = App(tmp_path)
    r = app.run("lr=0.5,0.1,0.2", "hydra.launcher.fail_fast=true", "hydra.launcher.jobs_per_task=1",
                EXCA_TEST_RELEASE=str(tmp_path / "never"))  # fmt: skip
    assert r.returncode != 0 and "fail_fast: job #0" in r.stderr and "2 other job(s) stopped" in r.stderr, r.stderr
    for lr in (0.1, 0.2):
        entry = app.entry(model={"name": "conv"}, lr=lr)
        assert not (entry / "outcome.json").exists() and not (entry / "job.json").exists()
    time.sleep(2)
    arrays = sorted({p.name.split("_")[0] for p in (app.sweep_dir / ".submitit").iterdir() if p.name[:1].isdigit()})
    queued = subprocess.run(["squeue", "-h", "-j", ",".join(arrays), "-o", "%i %T"], capture_output=True, text=True).stdout
    assert arrays and all("RUNNING" not in line and "PENDING" not in line for line in queued.splitlines()), queued
