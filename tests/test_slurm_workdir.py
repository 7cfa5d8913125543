"""On a real Slurm (issue 15): a sweep held in the queue while the user edits the code runs the
code of its submission (``hydra.launcher.workdir``); its tasks read their job environment the
submitit way and ``hydra.job.id`` is Slurm's ``<array>_<task>``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import test_slurm as helpers  # tests/ is on sys.path (conftest.py)

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

APP = Path(__file__).resolve().parent / "apps" / "jobenv"


def _project(tmp_path: Path) -> tuple[Path, Path, Path, Path, dict[str, str]]:
    """A copy of the app whose code module says "old"; where jobs report, cache and write."""
    project = tmp_path / "project"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "snap_code.py").write_text('VALUE = "old"\n')
    seen, cache, sweep_dir = tmp_path / "seen", tmp_path / "cache", tmp_path / "sweep"
    seen.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["EXCA_TEST_LOG"] = str(seen)
    return project, seen, cache, sweep_dir, env


def test_held_jobs_run_the_code_of_their_submission(tmp_path: Path) -> None:
    project, seen, cache, sweep_dir, env = _project(tmp_path)
    # one task per job: the test holds the array and reads each job's Slurm id from job.json
    cmd = [sys.executable, "app.py", "-m", "hydra/launcher=exca_slurm", "hydra.launcher.timeout_min=5", "hydra.launcher.jobs_per_task=1",
           "+hydra.launcher.additional_parameters.hold=true", "hydra.launcher.workdir.copied=[.]",
           f"hydra.launcher.folder={cache}", "action=code", "x=1,2", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ids: list[str] = []
    try:
        refs = helpers.wait_for(lambda: len(list(cache.glob("*/*/job.json"))) == 2 and sorted(cache.glob("*/*/job.json")),
                                60, "the sweep to be submitted")  # fmt: skip
        ids = [json.loads(ref.read_text())["job_id"] for ref in refs]
        assert all("PENDING" in helpers.squeue_state(job_id) for job_id in ids), ids  # held
        (project / "snap_code.py").write_text('VALUE = "new"\n')  # the user edits the code meanwhile
        subprocess.run(["scontrol", "release", ids[0].split("_")[0]], check=True, capture_output=True)
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
        helpers.scancel(*ids)
    assert proc.returncode == 0, out
    snapshot = next((sweep_dir / ".exca" / "code").iterdir())
    for num in (0, 1):
        job = json.loads((seen / f"{num}.json").read_text())
        assert job["code"] == "old", job  # the code of the submission, not the edited one
        assert job["cluster"] == "slurm" and job["cwd"] == str(snapshot)
        assert re.fullmatch(r"\d+_\d", job["hydra_job_id"]) and job["hydra_job_id"] == job["job_id"], job
        assert job["hydra_job_id"] in ids and Path(job["stdout"]).exists()
        assert (sweep_dir / str(num) / ".hydra" / "config.yaml").exists()  # outputs in the sweep dir


def test_pull_workers_run_the_code_of_their_submission(tmp_path: Path) -> None:
    """The same with the default pull workers: the held workers start after the edit, in the
    snapshot, and run the submission's code."""
    project, seen, cache, sweep_dir, env = _project(tmp_path)
    cmd = [sys.executable, "app.py", "-m", "hydra/launcher=exca_slurm", "hydra.launcher.timeout_min=5",
           "+hydra.launcher.additional_parameters.hold=true", "hydra.launcher.workdir.copied=[.]",
           f"hydra.launcher.folder={cache}", "action=code", "x=1,2", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip

    def held() -> list[str]:
        out = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%A|%r"], capture_output=True, text=True).stdout
        return sorted({line.split("|")[0] for line in out.splitlines() if line.endswith("JobHeldUser")})

    before = set(held())  # another test's leftovers are not ours to release
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ids: list[str] = []
    try:
        ids = helpers.wait_for(lambda: [i for i in held() if i not in before], 60, "the workers to be submitted, held")
        (project / "snap_code.py").write_text('VALUE = "new"\n')  # the user edits the code meanwhile
        for job_id in ids:
            subprocess.run(["scontrol", "release", job_id], check=True, capture_output=True)
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
        helpers.scancel(*ids)
    assert proc.returncode == 0, out
    snapshot = next((sweep_dir / ".exca" / "code").iterdir())
    for num in (0, 1):
        job = json.loads((seen / f"{num}.json").read_text())
        assert job["code"] == "old" and job["cwd"] == str(snapshot), job
