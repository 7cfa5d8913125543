"""Pull workers on a real Slurm (issue 16): array tasks that claim jobs one by one, through the
launcher (hydra.launcher.jobs_per_task=null, the default) and the Python API (the same backend)."""

from __future__ import annotations

import json
import re
import subprocess
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache.store import JobFailure
from slurm_models import Crash, Gated, Timed  # noqa: E402  (tests/ is on sys.path)
from test_slurm import App, _kill_own, _load, infra, marks_dir, scancel, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]


def _ref(entry: Path) -> dict[str, tp.Any]:
    return json.loads((entry / "job.json").read_text())


def _pools(folder: Path) -> list[Path]:
    return sorted(folder.rglob("batch-*.pool"))


def _arrays(pool: Path) -> list[str]:
    rounds = sorted((pool / "rounds").glob("*.json"), key=lambda p: int(p.stem))
    return [a for path in rounds for a in json.loads(path.read_text())["arrays"]]


def test_each_job_runs_once_across_workers_even_when_two_sweeps_overlap(tmp_path: Path) -> None:
    app = App(tmp_path)
    first = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
    second = [0.6, 0.7, 0.8, 0.9, 1.1, 1.2]  # half of it is the first sweep's
    common = ["hydra.launcher.array_parallelism=3"]
    a = app.start("lr=" + ",".join(map(str, first)), *common)
    b = subprocess.Popen([*app.command("lr=" + ",".join(map(str, second)), *common)[:-1], f"hydra.sweep.dir={tmp_path / 'sweep2'}"],
                         cwd=tmp_path, env=app.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    out_a, _ = a.communicate(timeout=240)
    out_b, _ = b.communicate(timeout=240)
    assert a.returncode == 0, out_a
    assert b.returncode == 0, out_b
    ran = sorted(float(line.split("lr=")[1]) for line in app.lines())
    assert ran == sorted(set(first + second)), ran  # each job exactly once, in either sweep
    # one array of min(N, array_parallelism) = 3 workers for the first sweep, several of them took jobs
    refs = [_ref(app.entry(model={"name": "conv"}, lr=lr)) for lr in first]
    assert {r["backend"] for r in refs} == {"SlurmJob"}
    assert len({r["job_id"].split("_")[0] for r in refs}) <= 2  # its array (a few may be the other sweep's)
    assert len({r["job_id"] for r in refs}) >= 2, refs
    pool = _pools(tmp_path / "sweep" / ".submitit")[0]
    assert len(json.loads((pool / "rounds" / "0.json").read_text())["tasks"]) == 3
    assert all((Path(r["log"])).exists() for r in refs)  # each job's own log file


def test_workers_out_of_time_leave_the_rest_to_a_follow_up_array(tmp_path: Path) -> None:
    # timeout_min=1 and 14 s jobs: a worker takes a job only while its time left covers 1.25x the
    # longest it has seen + 10 s, i.e. 3 jobs at most; 2 workers cannot run the 8 jobs in one array
    marks = marks_dir(tmp_path)
    base = Timed(x=0, marks=marks, infra=infra(tmp_path, timeout_min=1, slurm_signal_delay_s=5, slurm_array_parallelism=2))
    tasks = [base.infra.clone_obj(x=x, sleep_s=14.0) for x in range(8)]
    with base.infra.job_array() as array:
        array.extend(tasks)
    pool = _pools(tmp_path / "cache")[0]
    try:
        results = [t.compute() for t in tasks]  # the API's status reads reconcile: they submit the follow-up
    finally:
        scancel(*_arrays(pool))
    assert [r["x"] for r in results] == [10 * x for x in range(8)]
    assert all(len((Path(marks) / f"{x}.txt").read_text().splitlines()) == 1 for x in range(8))  # each once
    arrays = _arrays(pool)
    assert len(arrays) >= 2, arrays  # a follow-up array
    assert len({r["array_job_id"] for r in results}) >= 2
    assert all(t.infra.status() == "completed" for t in tasks)


def test_a_job_that_kills_its_worker_process_fails_alone(tmp_path: Path) -> None:
    # one worker (array_parallelism=1) runs them all: each job in its own forked child
    base = Crash(x=0, infra=infra(tmp_path, slurm_array_parallelism=1))
    hows = ["ok", "segv", "ok", "exit", "ok"]
    tasks = [base.infra.clone_obj(x=x, how=how) for x, how in enumerate(hows)]
    with base.infra.job_array() as array:
        array.extend(tasks)
    pool = _pools(tmp_path / "cache")[0]
    try:
        wait_for(lambda: all(t.infra.status() in ("completed", "failed") for t in tasks), 120, "the 5 jobs", every=1)
    finally:
        scancel(*_arrays(pool))
    assert [t.infra.status() for t in tasks] == ["completed", "failed", "completed", "failed", "completed"]
    assert [tasks[x].compute() for x in (0, 2, 4)] == [0, 2, 4]
    workers = {_ref(t.infra.uid_folder())["job_id"] for t in tasks}  # type: ignore[arg-type]
    assert len(workers) == 1, workers  # the worker outlived both crashes
    for x, why in ((1, "signal SIGSEGV"), (3, "exit code 3")):
        with pytest.raises(JobFailure, match=why):
            tasks[x].compute()
    assert len(_arrays(pool)) == 1  # no follow-up was needed


def test_scancel_of_one_worker_loses_only_the_job_it_was_running(tmp_path: Path) -> None:
    marks = Path(marks_dir(tmp_path))
    base = Gated(x=0, marks=str(marks), infra=infra(tmp_path, slurm_array_parallelism=3))
    tasks = [base.infra.clone_obj(x=x) for x in range(3)]
    with base.infra.job_array() as array:
        array.extend(tasks)
    pool = _pools(tmp_path / "cache")[0]
    try:
        wait_for(lambda: all((marks / f"started-{x}").exists() for x in range(3)), 60, "the 3 jobs to start")
        assert [t.infra.status() for t in tasks] == ["running"] * 3
        worker = _ref(tasks[1].infra.uid_folder())["job_id"]  # type: ignore[arg-type]
        assert len({_ref(t.infra.uid_folder())["job_id"] for t in tasks}) == 3  # type: ignore[arg-type]
        subprocess.run(["scancel", worker], check=True)
        wait_for(lambda: tasks[1].infra.status() == "failed", 90, f"status() of the job of cancelled worker {worker}", every=1)
        assert [tasks[0].infra.status(), tasks[2].infra.status()] == ["running", "running"]
        for x in (0, 2):
            (marks / f"release-{x}").write_text("go")
        assert [tasks[0].compute(), tasks[2].compute()] == [0, 2]
    finally:
        scancel(*_arrays(pool))
        for x in range(3):
            started = marks / f"started-{x}"
            if started.exists() and not (marks / f"release-{x}").exists():
                _kill_own(int(started.read_text()), "submitit")
    with pytest.raises(JobFailure) as info:
        tasks[1].compute()
    message = str(info.value)
    assert "CANCELLED" in message and worker in message, message
    log = re.search(r"log: (\S+)", message)
    assert log and Path(log.group(1)).exists(), message


def test_retry_reruns_exactly_the_scattered_failures(tmp_path: Path) -> None:
    app = App(tmp_path)
    lrs = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.25]  # 0.2 and 0.6 raise, 0.25 kills its process
    sweep = ["hydra/sweeper=exca", "lr=" + ",".join(map(str, lrs)), "hydra.launcher.array_parallelism=2"]
    r = app.run(*sweep, EXCA_TEST_FAIL="0.2,0.6")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    for num, lr in enumerate(lrs):
        status = "FAILED" if lr in (0.2, 0.6, 0.25) else "COMPLETED"
        assert re.search(rf"^\s+{num}\s+{status}\s", out, re.M), out
    assert "exit code 3" in str(_load(app.entry(model={"name": "conv"}, lr=0.25) / "error.pkl"))
    again = ["hydra/sweeper=exca", "lr=0.1,0.2,0.3,0.4,0.6,0.7", "hydra.launcher.array_parallelism=2", "hydra.sweeper.mode=retry"]
    retry = app.run(*again)
    out = retry.stdout + retry.stderr
    assert retry.returncode == 0, out
    assert re.findall(r"launching (\d+) validated job", out) == ["2"], out  # exactly the failed ones
    done = sorted(line.split()[-1] for line in app.lines())
    assert done == ["lr=0.1", "lr=0.2", "lr=0.3", "lr=0.4", "lr=0.6", "lr=0.7"], done  # each once


def test_the_summary_time_of_a_pulled_job_is_its_own(tmp_path: Path) -> None:
    """Issue 21: with one worker pulling 4 jobs one after the other, the summary's time column
    is each job's own duration (outcome.json), not the time since the launch."""
    app = App(tmp_path)
    r = app.run("lr=0.1,0.2,0.3,0.4", "hydra.launcher.array_parallelism=1")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    table = out[out.rindex("Sweep summary:") :].splitlines()[2:6]
    for row in table:
        num, status, seconds = row.split()[:3]
        lr = (0.1, 0.2, 0.3, 0.4)[int(num)]
        outcome = json.loads((app.entry(model={"name": "conv"}, lr=lr) / "outcome.json").read_text())
        assert status == "COMPLETED" and seconds == f"{outcome['duration']:.1f}s", (row, outcome)
