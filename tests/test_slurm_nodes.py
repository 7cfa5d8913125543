"""Node faults on the real cluster (issue 7, item 3): the node fails or is drained mid-array.

These tests take the node of scripts/slurm-up's one-node cluster DOWN or DRAIN with scontrol
(root only) and always resume it. On any other cluster they skip (they would kill other users'
jobs), or fail when $CI or $EXCA_REQUIRE_SLURM is set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache.store import JobFailure
from slurm_models import Gated
from test_slurm import App, _alive, _kill_own, _load, infra, job_ref, marks_dir, scancel, squeue_state, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

TEST_CLUSTER = "excahydra"  # ClusterName in scripts/slurm-up


def _scontrol_node(node: str, state: str, reason: str = "") -> None:
    args = ["scontrol", "update", f"NodeName={node}", f"State={state}"]
    subprocess.run(args + ([f"Reason={reason}"] if reason else []), capture_output=True, text=True)


def _node_state(node: str) -> str:
    return subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"], capture_output=True, text=True).stdout.strip()


def _usable(node: str) -> bool:
    return re.fullmatch(r"idle|mix|alloc", _node_state(node)) is not None


def resume(node: str) -> None:
    """Back in service (a node set DOWN may already be back: ReturnToService=2)."""
    if not _usable(node):
        _scontrol_node(node, "RESUME")
    wait_for(lambda: _usable(node), 60, f"node {node} to be usable again ({_node_state(node)})", every=0.5)


@pytest.fixture
def node() -> tp.Iterator[str]:
    """The test cluster's only node; resumed after the test, whatever happened."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    cluster = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.M)
    nodes = subprocess.run(["sinfo", "-h", "-o", "%n"], capture_output=True, text=True).stdout.split()
    if not cluster or cluster.group(1) != TEST_CLUSTER or len(set(nodes)) != 1 or os.geteuid() != 0:
        message = f"node fault tests need root on scripts/slurm-up's cluster {TEST_CLUSTER!r}"
        if any(os.environ.get(k, "").lower() not in ("", "0", "false") for k in ("CI", "EXCA_REQUIRE_SLURM")):
            pytest.fail(message)
        pytest.skip(message)
    name = nodes[0]
    resume(name)
    try:
        yield name
    finally:
        resume(name)


def _steps_on_node(job_id: str) -> bool:
    """Whether a slurmstepd of this job is still on the node (this machine)."""
    raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True).stdout.strip()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(f"slurmstepd: [{raw}.".encode()):
                return True
        except OSError:
            pass
    return False


def _start_requeued_now(marks: Path, tasks: tp.Sequence[tp.Any], xs: tp.Sequence[int]) -> None:
    """Once the killed runs are gone, let the requeued Gated tasks finish at once and start them
    now rather than after Slurm's requeue delay (BeginTime +120 s)."""
    for x in xs:  # SIGTERM, then SIGKILL after KillWait (submitit's handler ignores SIGTERM)
        pid = int((marks / f"started-{x}").read_text())
        wait_for(lambda: not _alive(pid), 30, f"the first run of task {x} to end")
        assert not (tasks[x].infra.uid_folder() / "result.pkl").exists()
        (marks / f"release-{x}").write_text("go")
    # a step of the killed run can linger a few seconds (it reports to the dead srun): relaunching
    # then makes slurmd refuse a "second copy", and Slurm drains the node and holds the job
    for x in xs:
        job_id = job_ref(tasks[x])["job_id"]
        wait_for(lambda: not _steps_on_node(job_id), 60, f"the steps of {job_id} to leave the node")
    subprocess.run(["sleep", "2"])  # nor in the second its run was killed ("credential revoked")
    for x in xs:
        subprocess.run(["scontrol", "update", f"JobId={job_ref(tasks[x])['job_id']}", "StartTime=now"], check=True)


# ----- the node fails: Slurm requeues its running tasks, finished results stay -----
def test_node_failure_mid_array_requeues_and_keeps_finished_results(tmp_path: Path, node: str) -> None:
    marks = Path(marks_dir(tmp_path))
    base = Gated(x=0, marks=str(marks), infra=infra(tmp_path, slurm_jobs_per_task=1))  # about tasks
    tasks = [base.infra.clone_obj(x=x) for x in range(3)]
    with base.infra.job_array() as array:
        array.extend(tasks)
    ids = [job_ref(t)["job_id"] for t in tasks]
    try:
        wait_for(lambda: all((marks / f"started-{x}").exists() for x in range(3)), 60, "the 3 tasks to start")
        (marks / "release-0").write_text("go")
        assert tasks[0].compute() == 0
        finished = tasks[0].infra.uid_folder() / "result.pkl"
        before = finished.stat().st_mtime_ns
        first_pids = {x: (marks / f"started-{x}").read_text() for x in (1, 2)}
        _scontrol_node(node, "DOWN", "exca-hydra test: node failure")
        # requeued by Slurm (JobRequeue=1): pending again, so running to us, never failed, even
        # while sacct still shows NODE_FAIL (it lags slurmctld by about a second)
        wait_for(lambda: all(squeue_state(ids[x]).startswith("PENDING") for x in (1, 2)), 30, "the requeue")
        assert [t.infra.status() for t in tasks] == ["completed", "running", "running"]
        resume(node)
        _start_requeued_now(marks, tasks, (1, 2))
        wait_for(lambda: [t.infra.status() for t in tasks[1:]] == ["completed"] * 2, 90, "the requeued runs", every=1)
        assert [tasks[1].compute(), tasks[2].compute()] == [1, 2]
    finally:
        scancel(*ids)
        for x in range(3):
            started = marks / f"started-{x}"
            if started.exists():
                _kill_own(int(started.read_text()), "submitit")
    assert [t.infra.status() for t in tasks] == ["completed"] * 3
    assert finished.stat().st_mtime_ns == before  # the finished task's result was not touched
    for x in (1, 2):  # a second run in the same Slurm job id (a requeue, not a resubmission)
        assert (marks / f"started-{x}").read_text() != first_pids[x]
        assert job_ref(tasks[x])["job_id"] == ids[x]


# ----- the node fails and the jobs may not be requeued: reported, then retried -----
def test_node_failure_without_requeue_is_reported_and_retry_reruns_exactly_those(tmp_path: Path, node: str) -> None:
    app = App(tmp_path)
    lrs = (0.2, 0.1, 0.3)  # jobs 0 and 2 will be on the failing node: a scattered retry
    sweep = ["hydra/sweeper=exca", "lr=" + ",".join(map(str, lrs)), "+hydra.launcher.additional_parameters.no_requeue=true",
             "hydra.launcher.jobs_per_task=1"]  # fmt: skip
    release = str(tmp_path / "release-{lr}")
    entries = {lr: app.entry(model={"name": "conv"}, lr=lr) for lr in lrs}
    ids: dict[float, str] = {}
    proc = app.start(*sweep, EXCA_TEST_RELEASE=release)
    try:
        wait_for(lambda: all((e / "job.json").exists() for e in entries.values()), 60, "the submission")
        ids = {lr: json.loads((e / "job.json").read_text())["job_id"] for lr, e in entries.items()}
        wait_for(lambda: all(squeue_state(i).startswith("RUNNING") for i in ids.values()), 60, "3 running tasks")
        Path(release.format(lr=0.1)).write_text("go")
        wait_for(lambda: (entries[0.1] / "result.pkl").exists(), 60, "lr=0.1 to finish")
        _scontrol_node(node, "DOWN", "exca-hydra test: node failure")
        out, _ = proc.communicate(timeout=120)
    except BaseException:
        proc.kill()
        scancel(*ids.values())
        raise
    finally:
        resume(node)
    assert proc.returncode != 0, out
    for num, status in ((0, "FAILED"), (1, "COMPLETED"), (2, "FAILED")):
        assert re.search(rf"^\s+{num}\s+{status}\s", out, re.M), out
    for lr in (0.2, 0.3):
        error = _load(entries[lr] / "error.pkl")
        assert isinstance(error, JobFailure), error
        message = str(error)
        assert ids[lr] in message and "NODE_FAIL" in message, message
        assert "DUE TO NODE FAILURE" in message, message  # Slurm's own reason, from the job's log
        log = re.search(r"log: (\S+)", message)
        assert log and Path(log.group(1)).exists(), message
    assert app.lines() == ["1 ConvCfg lr=0.1"]

    for lr in lrs:
        Path(release.format(lr=lr)).write_text("go")
    retry = app.run(*sweep, "hydra.sweeper.mode=retry", EXCA_TEST_RELEASE=release)
    out = retry.stdout + retry.stderr
    assert retry.returncode == 0, out
    assert re.findall(r"launching (\d+) validated job", out) == ["2"], out  # exactly the failed ones
    new_ids = {lr: json.loads((e / "job.json").read_text())["job_id"] for lr, e in entries.items()}
    assert new_ids[0.1] == ids[0.1]  # the finished one was not resubmitted
    assert new_ids[0.2].split("_")[0] == new_ids[0.3].split("_")[0] != ids[0.2].split("_")[0]  # one new array
    assert sorted(app.lines()) == ["0 ConvCfg lr=0.2", "1 ConvCfg lr=0.1", "2 ConvCfg lr=0.3"]  # old numbers


# ----- the node is drained: running tasks finish, the rest wait and say why -----
def test_drained_node_finishes_running_tasks_and_holds_the_rest(tmp_path: Path, node: str) -> None:
    app = App(tmp_path)
    lrs = (0.1, 0.2, 0.3, 0.4)
    release = str(tmp_path / "release-{lr}")
    entries = {lr: app.entry(model={"name": "conv"}, lr=lr) for lr in lrs}
    proc = app.start("lr=" + ",".join(map(str, lrs)), "hydra.launcher.array_parallelism=2", "hydra.launcher.jobs_per_task=1",
                     EXCA_TEST_RELEASE=release)  # fmt: skip
    ids: dict[float, str] = {}
    try:
        wait_for(lambda: all((e / "job.json").exists() for e in entries.values()), 60, "the submission")
        ids = {lr: json.loads((e / "job.json").read_text())["job_id"] for lr, e in entries.items()}
        wait_for(lambda: [squeue_state(ids[lr]).split("|")[0] for lr in lrs].count("RUNNING") == 2, 60, "2 running")
        _scontrol_node(node, "DRAIN", "exca-hydra test: drain")
        for lr in lrs:
            Path(release.format(lr=lr)).write_text("go")
        wait_for(lambda: sum((e / "result.pkl").exists() for e in entries.values()) == 2, 60, "the 2 running to finish")
        held = [lr for lr in lrs if not (entries[lr] / "result.pkl").exists()]
        wait_for(lambda: all("DRAINED" in squeue_state(ids[lr]) for lr in held), 30, "Slurm to hold the rest")
        subprocess.run(["sleep", "9"])  # a progress line (Slurm asked every 5 s, polls up to 2 s apart)
        assert not any((entries[lr] / "result.pkl").exists() for lr in held)
        resume(node)
        out, _ = proc.communicate(timeout=120)
    except BaseException:
        proc.kill()
        scancel(*ids.values())
        raise
    finally:
        resume(node)
    assert proc.returncode == 0, out
    assert re.search(r"Progress: 2/4 done, 0 failed, 0 running, 2 pending \(.*DRAINED", out), out
    assert sorted(line.split()[-1] for line in app.lines()) == ["lr=0.1", "lr=0.2", "lr=0.3", "lr=0.4"]
    assert all((e / "result.pkl").exists() for e in entries.values())
