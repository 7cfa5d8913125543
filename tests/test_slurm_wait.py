"""Issue 22, hydra#2479: `hydra.launcher.wait=false` exits once the jobs are submitted to the real
Slurm; a re-run collects them without submitting anything twice, with the same results as a
sweep that waited. The job for lr=1.0 waits for the file $EXCA_TEST_RELEASE (tests/apps/figures)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_slurm import wait_for

FIGURES = Path(__file__).resolve().parent / "apps" / "figures" / "app.py"
ADAPTIVE = Path(__file__).resolve().parent / "apps" / "adaptive" / "app.py"
SWEEP = ("model=a,b", "lr=0.1,1.0")


class Sweeps:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.count = 0

    def run(self, *args: str, app: Path = FIGURES, cache: bool = True) -> tuple[int, str, float]:
        self.count += 1
        env = {**os.environ, "EXCA_TEST_RELEASE": str(self.tmp / "release")}
        folder = [f"infra.folder={self.tmp / 'cache'}"] if cache and app == FIGURES else []
        where = [] if any(a.startswith("hydra.sweep.dir=") for a in args) else [f"hydra.sweep.dir={self.tmp / f'sweep{self.count}'}"]
        command = [sys.executable, str(app), "-m", *args, *folder, "hydra/launcher=exca_slurm", *where]
        start = time.time()
        proc = subprocess.run(command, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr, time.time() - start

    def outcomes(self) -> int:
        return len(list((self.tmp / "cache").glob("*/*/outcome.json")))


def _arrays(out: str) -> set[str]:
    """The Slurm arrays this run submitted (the launcher logs one line per job)."""
    return set(re.findall(r"-> Slurm job (\d+)", out))


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_wait_false_exits_once_submitted_and_a_rerun_collects_without_submitting(tmp_path: Path) -> None:
    sweeps = Sweeps(tmp_path)
    code, out, took = sweeps.run(*SWEEP, "hydra.launcher.wait=false")
    assert code == 0, out
    assert len(_arrays(out)) == 1 and "not waiting for them (hydra.launcher.wait=false)" in out, out
    assert "4 submitted (not waited for" in out and out.count("SUBMITTED") == 4, out
    wait_for(lambda: sweeps.outcomes() == 2, 120, "the two quick jobs to end after the launcher exited")
    assert sweeps.outcomes() == 2  # the lr=1.0 jobs wait for the release file: still running
    # (c) a re-run while two still run: nothing submitted, they are listed as running
    code, out, _ = sweeps.run(*SWEEP, "hydra.launcher.wait=false")
    assert code == 0 and _arrays(out) == set(), out
    assert "2 cached, 2 running, 0 to run" in out and "not waiting (wait=false), a re-run collects them" in out, out
    # (b) released: a waiting re-run collects all four, submits nothing, same results as computed
    (tmp_path / "release").write_text("")
    code, out, _ = sweeps.run(*SWEEP)
    assert code == 0 and _arrays(out) == set(), out
    assert "Sweep summary: 4 job(s): 4 cached" in out, out
    direct = Sweeps(tmp_path / "direct")
    (tmp_path / "direct").mkdir()
    (tmp_path / "direct" / "release").write_text("")
    code, waited, _ = direct.run(*SWEEP)
    assert code == 0 and len(_arrays(waited)) == 1, waited
    results = lambda text: re.findall(r"acc=[\d.]+, loss=[\d.]+", text)  # noqa: E731
    assert results(out) == results(waited) and len(results(out)) == 4, (out, waited)


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_wait_false_is_refused_where_nothing_could_collect_the_jobs(tmp_path: Path) -> None:
    """No cache folder, fail_fast, a sweeper that reads each result (Optuna), exca_local: each is
    refused with one message, before anything is submitted."""
    sweeps = Sweeps(tmp_path)
    code, out, _ = sweeps.run(*SWEEP, "hydra.launcher.wait=false", cache=False)
    assert code == 1 and "wait=false needs a cache folder" in out and not _arrays(out), out
    code, out, _ = sweeps.run(*SWEEP, "hydra.launcher.wait=false", "hydra.launcher.fail_fast=true")
    assert code == 1 and "cannot go with wait=false" in out and not _arrays(out), out
    code, out, _ = sweeps.run("hydra/sweeper=optuna", "x=interval(-1,1)", "hydra.sweeper.n_trials=2", "hydra.launcher.wait=false",
                              f"hydra.launcher.folder={tmp_path / 'cache'}", app=ADAPTIVE)  # fmt: skip
    assert code == 1 and "proposes its next jobs from the results" in out and not _arrays(out), out
    env = {**os.environ, "EXCA_TEST_RELEASE": str(tmp_path / "release")}
    proc = subprocess.run([sys.executable, str(FIGURES), "-m", "model=a", "hydra.launcher.wait=false", f"infra.folder={tmp_path / 'cache'}",
                           f"hydra.sweep.dir={tmp_path / 'local'}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "wait" in proc.stderr, proc.stderr
    assert not list((tmp_path / "cache").glob("*/*/outcome.json"))


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_jobs_cancelled_after_wait_false_read_as_failed_once_a_run_saw_them(tmp_path: Path) -> None:
    """Found by the red team (redteam-look F3, F4): scancel-ed after wait=false, the jobs were FAILED
    for the re-run but "submitted" for table/list/plot forever; the message said "state ended"."""
    from exca_hydra.cache.store import Entry
    from exca_hydra.table import iter_entries, read_status

    sweeps = Sweeps(tmp_path)
    code, out, _ = sweeps.run("model=a", "lr=1.0", "hydra.launcher.wait=false")
    assert code == 0, out
    (array,) = _arrays(out)
    def taken() -> bool:  # a worker took it (its own job reference replaced the placeholder)
        refs = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/*/job.json")]
        return bool(refs) and not refs[0].get("placeholder")

    wait_for(taken, 60, "a worker to take the job")
    subprocess.run(["scancel", array], check=True)
    wait_for(lambda: squeue_state_of(array) == "", 60, "the job to leave the queue")
    code, out, _ = sweeps.run("model=a", "lr=1.0")
    assert code == 1 and "1 failed" in out and "CANCELLED" in out and "state ended" not in out, out
    (entry,) = list(iter_entries(tmp_path / "cache"))
    assert read_status(Entry(entry.folder)) == "failed"  # recorded: the cache tool sees it too


def squeue_state_of(array: str) -> str:
    proc = subprocess.run(["squeue", "-h", "-j", array, "-o", "%T"], capture_output=True, text=True)
    return proc.stdout.split()[0] if proc.stdout.split() else ""


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_the_timeline_of_a_wait_false_sweep_shows_its_jobs_run(tmp_path: Path) -> None:
    """Found by the red team (redteam-look F6): the sweep that submitted the jobs and did not wait
    drew them "interrupted", then "cached" once a re-run into its folder collected them."""
    from exca_hydra.timeline import bars

    sweeps = Sweeps(tmp_path)
    args = ("model=a,b", "lr=0.1", "hydra.launcher.wait=false", f"hydra.sweep.dir={tmp_path / 'same'}")
    code, out, _ = sweeps.run(*args)
    assert code == 0, out
    wait_for(lambda: sweeps.outcomes() == 2, 120, "the jobs to end")
    assert sorted(b.outcome for b in bars(tmp_path / "cache", tmp_path / "same")[0]) == ["completed"] * 2
    code, out, _ = sweeps.run(*args)  # collecting, into the same folder
    assert code == 0 and "2 cached" in out, out
    found, _ = bars(tmp_path / "cache", tmp_path / "same")
    assert sorted(b.outcome for b in found) == ["completed"] * 2 and all(b.submitted < b.started for b in found), found


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_ctrl_c_while_collecting_is_one_line(tmp_path: Path) -> None:
    """Found by the red team (redteam-look F14): Ctrl-C while a re-run waited for a wait=false
    sweep's jobs printed a KeyboardInterrupt traceback."""
    import signal

    sweeps = Sweeps(tmp_path)
    code, out, _ = sweeps.run("model=a", "lr=1.0", "hydra.launcher.wait=false")  # waits for the release file
    assert code == 0, out
    env = {**os.environ, "EXCA_TEST_RELEASE": str(tmp_path / "release")}
    command = [sys.executable, str(FIGURES), "-m", "model=a", "lr=1.0", f"infra.folder={tmp_path / 'cache'}",
               "hydra/launcher=exca_slurm", f"hydra.sweep.dir={tmp_path / 'collect'}"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    wait_for(lambda: (tmp_path / "collect" / ".exca" / "jobs.jsonl").exists(), 60, "the re-run to plan")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (tmp_path / "release").write_text("")  # let the job end
    assert "Interrupted while waiting for 1 job(s) computed by another launch" in err and "Traceback" not in err, err
