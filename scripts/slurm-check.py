#!/usr/bin/env python3
"""Smoke test of the local Slurm cluster brought up by scripts/slurm-up, through submitit.

Checks: one submit returning 42, a map_array of 10 items, `sacct` showing COMPLETED
(real accounting), and that `scancel` of a running job makes submitit report CANCELLED
(this only works with a working sacct: submitit has no squeue fallback).
Every wait is bounded. Exit code 0 if all checks pass, 1 otherwise.
Usage: python3 scripts/slurm-check.py [--keep] [--no-cancel]
"""
import shutil
import subprocess
import sys
import tempfile
import time
import typing as tp

import submitit

TIMEOUT_S = 120


def answer() -> int:
    return 42


def square(x: int) -> int:
    return x * x


def sleep_long() -> None:
    time.sleep(300)


def wait_done(jobs: tp.Sequence[submitit.Job], timeout: float = TIMEOUT_S) -> None:
    """Bounded wait: job.result() alone would block forever if the cluster is broken."""
    deadline = time.time() + timeout
    for job in jobs:
        while not job.done():
            if time.time() > deadline:
                raise TimeoutError(f"job {job.job_id} not done after {timeout}s (state {job.state})")
            time.sleep(0.5)


def sacct_states(job_id: str) -> tp.Dict[str, str]:
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State"],
        check=True, capture_output=True, text=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line.strip())


def wait_sacct_completed(job_id: str, expected: int, timeout: float = 30) -> None:
    """Accounting reaches the DB a bit after the job ends: poll (bounded)."""
    deadline = time.time() + timeout
    while True:
        states = sacct_states(job_id)
        done = [k for k, v in states.items() if v == "COMPLETED"]
        if len(done) >= expected:
            return
        if time.time() > deadline:
            raise AssertionError(f"sacct -j {job_id}: expected {expected} COMPLETED, got {states}")
        time.sleep(0.5)


def check_submit(ex: submitit.AutoExecutor) -> str:
    job = ex.submit(answer)
    wait_done([job])
    assert job.result() == 42, job.result()
    wait_sacct_completed(job.job_id, 1)
    return f"job {job.job_id} -> 42, sacct COMPLETED"


def check_map_array(ex: submitit.AutoExecutor) -> str:
    jobs = ex.map_array(square, range(10))
    wait_done(jobs)
    results = [j.result() for j in jobs]
    assert results == [x * x for x in range(10)], results
    array_id = jobs[0].job_id.split("_")[0]
    wait_sacct_completed(array_id, 10)
    return f"array {array_id} (10 tasks) -> squares, sacct 10x COMPLETED"


def check_scancel(ex: submitit.AutoExecutor) -> str:
    job = ex.submit(sleep_long)
    deadline = time.time() + 60
    # Wait until Slurm really runs it (squeue is authoritative right away; sacct may lag).
    while True:
        out = subprocess.run(["squeue", "-h", "-j", job.job_id, "-o", "%T"],
                             capture_output=True, text=True).stdout.strip()
        if out == "RUNNING":
            break
        if time.time() > deadline:
            raise TimeoutError(f"job {job.job_id} not RUNNING after 60s (squeue: {out!r})")
        time.sleep(0.3)
    t_run = time.time()
    subprocess.run(["scancel", job.job_id], check=True)
    deadline = time.time() + 60
    while not (job.done(force_check=True) and job.state.startswith("CANCELLED")):
        if time.time() > deadline:
            raise AssertionError(f"job {job.job_id}: submitit state {job.state!r} after scancel")
        time.sleep(0.5)
    # Not calling job.result() here: for a job without result pickle submitit waits ~15 s
    # (file-system lag guard) before raising UncompletedJobError.
    return f"job {job.job_id} scancel -> submitit state {job.state!r} after {time.time() - t_run:.1f}s"


def main() -> int:
    for tool in ("sbatch", "sacct", "srun"):
        if shutil.which(tool) is None:
            print(f"FAIL: {tool} not on PATH (run scripts/slurm-up)")
            return 1
    folder = tempfile.mkdtemp(prefix="exca-slurm-check-")
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(timeout_min=10, slurm_partition="debug", cpus_per_task=1)
    checks = [check_submit, check_map_array]
    if "--no-cancel" not in sys.argv:
        checks.append(check_scancel)
    failed = 0
    t_all = time.time()
    for check in checks:
        t0 = time.time()
        try:
            msg = check(ex)
            print(f"PASS {check.__name__} ({time.time() - t0:.1f}s): {msg}", flush=True)
        except Exception as e:  # report every check, not only the first failure
            failed += 1
            print(f"FAIL {check.__name__} ({time.time() - t0:.1f}s): {type(e).__name__}: {e}", flush=True)
    if failed == 0 and "--keep" not in sys.argv:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"submitit folder kept: {folder}")
    print(f"slurm-check: {len(checks) - failed}/{len(checks)} passed in {time.time() - t_all:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
