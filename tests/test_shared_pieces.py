"""The pieces written once: the exclusive create under every claim (cache/lease.py ``create``) and
the failure messages (execution/failures.py), whose wording the callers used to build themselves."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import stat
import sys
from pathlib import Path


from exca_hydra.cache import lease
from exca_hydra.cache.itemclaims import ItemClaims
from exca_hydra.cache.store import JobFailure, JobInterrupted
from exca_hydra.execution import failures
from exca_hydra.execution.pull_worker import read_claim, try_claim


def _create(path: str) -> bool:
    return lease.create(Path(path), str(os.getpid()))


def test_one_creator_wins_and_its_text_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "claim"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        won = pool.map(_create, [str(path)] * 8)
    assert won.count(True) == 1 and path.read_text().isdigit()
    assert not lease.create(path, "again") and path.read_text().isdigit()  # never replaced


def _claim_without_room(pool: str) -> str:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        try_claim(Path(pool), 0, {"task": "12_0", "stderr": "x" * 100})
    except OSError as e:
        return f"raised {e.errno}"
    return "claimed"


def test_a_pull_claim_that_cannot_be_written_is_not_left_empty(tmp_path: Path) -> None:
    # a worker whose claim write fails used to leave an empty claims/<unit>, which the launcher
    # waits on for a lease; now the unit is left unclaimed at once
    (tmp_path / "claims").mkdir()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        said = pool.apply(_claim_without_room, (str(tmp_path),))
    assert said.startswith("raised")
    assert not (tmp_path / "claims" / "0").exists() and read_claim(tmp_path, 0) is None


def test_the_callers_use_the_one_create(tmp_path: Path) -> None:
    (tmp_path / "claims").mkdir()
    assert try_claim(tmp_path, 3, {"task": "12_0"}) and not try_claim(tmp_path, 3, {"task": "13_0"})
    assert read_claim(tmp_path, 3) == {"task": "12_0"}
    assert stat.S_IMODE((tmp_path / "claims" / "3").stat().st_mode) & 0o600 == 0o600
    claims, rival = ItemClaims(tmp_path / "items"), ItemClaims(tmp_path / "items")
    assert claims.take(["a", "b"]) == (["a", "b"], [])  # under the folder's lock (lease.create)
    assert rival.take(["b", "c"]) == (["c"], ["b"])
    claims.release()
    rival.release()


def test_the_failure_messages_keep_their_wording() -> None:
    died = failures.process_died(12, "signal 9")
    assert isinstance(died, JobFailure) and str(died) == "The job's process (pid 12) died (signal 9) before returning"
    pulled = failures.process_died(7, "exit code 3", task="5_1", log="/l/0.out", worker_log="/l/w.err")
    assert str(pulled) == ("The job's process (pid 7, in Slurm task 5_1) died (exit code 3) before returning\n"
                           "log: /l/0.out\nworker log: /l/w.err")  # fmt: skip
    stopped = failures.process_interrupted(12, "signal 2")
    assert isinstance(stopped, JobInterrupted) and str(stopped) == "The job's process (pid 12) was interrupted (signal 2)"
    assert str(failures.timed_out(4, 0.5, "SIGTERM")) == "The job timed out after 0.5 min: its process (pid 4) was stopped (SIGTERM)"
    assert str(failures.never_taken(5, "/pool")) == "No worker took this job in 5 arrays (/pool)"
    lost = str(failures.pull_worker_lost("44_2", "FAILED", "/nonexistent.err"))
    assert lost == ("Slurm job 44_2 (FAILED), the worker running this job, ended before it finished "
                    "(killed, out of time or memory?)\nlog: /nonexistent.err")  # fmt: skip
    assert "cannot be pickled: boom" in str(failures.unpicklable_return(TypeError("boom")))


def test_one_fork_routine_exit_codes_and_logs(tmp_path: Path) -> None:
    from exca_hydra.execution.fork_job import fork_child, redirect

    log = tmp_path / "child.log"

    def fails() -> None:
        redirect(log, log, append=False)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # pytest's capture aside: fds 1 and 2
        print("before")
        raise ValueError("boom")

    def interrupted() -> None:
        raise KeyboardInterrupt

    codes = [os.waitstatus_to_exitcode(os.waitpid(fork_child(run, *extra), 0)[1])
             for run, *extra in [(lambda: None,), (fails,), (interrupted, 130), (interrupted,)]]  # fmt: skip
    assert codes == [0, 1, 130, 1]
    text = log.read_text()
    assert text.startswith("before") and "ValueError: boom" in text  # the traceback went to the job's log


def test_an_item_claim_of_a_reused_pid_is_not_held(tmp_path: Path) -> None:
    # item claims name their owner as leases do (host, pid, start time): a live process that
    # reuses a dead owner's pid does not keep the items claimed
    import json

    from exca_hydra.cache.host import hostname, start_time

    claims = ItemClaims(tmp_path)
    claims.folder.mkdir(parents=True)
    me = {"host": hostname(), "pid": os.getpid(), "time": 0.0}
    (claims.folder / "reused.json").write_text(json.dumps({**me, "start": "1", "keys": ["a"]}))
    (claims.folder / "live.json").write_text(json.dumps({**me, "start": start_time(os.getpid()), "keys": ["b"]}))
    assert claims.held() == {"b"}
    assert not (claims.folder / "reused.json").exists()  # removed on the way, as a dead owner's
    assert claims.take(["a", "b"]) == (["a"], ["b"])
    claims.release()
