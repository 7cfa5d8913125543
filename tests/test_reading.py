"""Issue 20: looking is not acting. Every read (the cache tool's list/show/table/explain, with and
without --check, status(), job(), a plan) on a cache holding every kind of job reference, planted
pickles and half-written claims: no file changes, nothing is unpickled or submitted, every call
returns within seconds. Then the cases that used to hang."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache import lease
from exca_hydra.cache.host import hostname, start_time
from exca_hydra.cache.store import Entry
from exca_hydra.cli import main
from exca_hydra.execution import jobref
from exca_hydra.execution.plan import plan, read_status
from models import MyTask


class Marker:
    """Unpickling it creates a folder: shows whether a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (os.mkdir, (self.path,))


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for root in roots for p in [root, *root.rglob("*")]}


def _queue() -> list[str] | None:
    if shutil.which("squeue") is None:
        return None
    return sorted(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tp.Iterator[dict[str, tp.Any]]:
    monkeypatch.setenv("EXCA_TEST_DIR", str(tmp_path))
    cache, attacker, marks = tmp_path / "cache", tmp_path / "attacker", tmp_path / "marks"
    marks.mkdir()
    tasks = {x: MyTask(x=x, infra={"folder": cache}) for x in range(1, 10)}
    for task in tasks.values():
        task.compute()
    entries = {x: Entry(task.infra.uid_folder()) for x, task in tasks.items()}  # type: ignore[arg-type]
    for x in range(2, 10):
        entries[x].clear()
    # a completed entry whose result is a planted pickle
    (entries[1].folder / "result.pkl").write_bytes(pickle.dumps(Marker(marks / "result")))
    # a pull reference (the old form: no owner) into a pool an attacker wrote: a pickle, a round,
    # a half-written claim
    pool = attacker / "pool"
    for sub in ("rounds", "claims", "returns"):
        (pool / sub).mkdir(parents=True)
    (pool / "pool.pkl").write_bytes(pickle.dumps(Marker(marks / "pool")))
    (pool / "rounds" / "0.json").write_text(json.dumps({"arrays": ["999990"], "tasks": ["999990_0"]}))
    (pool / "claims" / "0").write_text("")
    (entries[2].folder / "job.json").write_text(json.dumps({"backend": "PullJob", "folder": str(pool), "unit": 0}))
    # a Slurm reference naming a folder with a planted submitit result
    slurm = attacker / "slurm"
    slurm.mkdir()
    (slurm / "999991_0_result.pkl").write_bytes(pickle.dumps(("success", Marker(marks / "slurm"))))
    (entries[3].folder / "job.json").write_text(json.dumps({"backend": "SlurmJob", "job_id": "999991", "folder": str(slurm), "stderr": str(slurm / "x.err")}))
    # a dead local job; a live pid that is not the job's process (a reused pid)
    (entries[4].folder / "job.json").write_text(json.dumps({"backend": "LocalJob", "job_id": str(_dead_pid()), "folder": str(slurm)}))
    sleeper = subprocess.Popen(["sleep", "60"])
    reused = {"backend": "ForkJob", "job_id": str(sleeper.pid), "host": hostname(), "start": "1", "folder": str(slurm)}
    (entries[5].folder / "job.json").write_text(json.dumps(reused))
    # a half-written claim; a fresh claim of another host; an unknown reference
    (entries[6].folder / "claim.json").write_text("")
    (entries[7].folder / "claim.json").write_text(json.dumps({"host": "node-7", "pid": 12, "start": "5"}))
    (entries[8].folder / "job.json").write_text(json.dumps({"backend": "Bogus", "job_id": "1"}))
    # a pull reference whose launch (dead owner) and pool folder are gone
    gone = {"backend": "PullJob", "folder": str(tmp_path / "removed-sweep" / "x.pool"), "unit": 3, "owner_host": hostname(), "owner_pid": _dead_pid()}
    (entries[9].folder / "job.json").write_text(json.dumps(gone))
    try:
        yield {"cache": cache, "attacker": attacker, "marks": marks, "tasks": tasks, "entries": entries}
    finally:
        sleeper.kill()


def test_reading_never_acts(planted: dict[str, tp.Any], capsys: pytest.CaptureFixture[str]) -> None:
    cache, attacker, marks, tasks, entries = (planted[k] for k in ("cache", "attacker", "marks", "tasks", "entries"))
    before, queue = _tree(cache, attacker), _queue()
    start = time.time()
    for check in ([], ["--check"]):
        assert main(["list", str(cache), *check]) == 0
        for entry in entries.values():
            assert main(["show", str(entry.folder), *check]) == 0
    assert main(["table", str(cache)]) == 0
    assert main(["explain", str(cache), "x=2"]) == 0
    statuses = {x: task.infra.status() for x, task in tasks.items()}
    steps = plan(list(entries.values()), "cached")
    jobs = {x: tasks[x].infra.job() for x in (2, 3, 6, 7, 8)}  # a reference each: reattached, never submitted
    with pytest.raises(Exception, match="999991"):
        jobs[3].result()  # the entry's failure, not the planted submitit pickle
    assert time.time() - start < 30
    capsys.readouterr()
    assert _tree(cache, attacker) == before  # nothing written
    assert not any(marks.iterdir())  # nothing unpickled
    assert _queue() == queue  # nothing submitted or cancelled
    assert statuses == {1: "completed", 2: "running", 3: "failed", 4: "failed", 5: "failed", 6: "running",
                        7: "running", 8: "failed", 9: "not submitted"}  # fmt: skip
    assert [s.action for s in steps] == ["skip", "wait", "skip", "skip", "skip", "wait", "wait", "skip", "run"]
    assert jobs[3].job_id == "999991"


def test_a_reused_pid_is_not_the_job(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ref = jobref.parse({"backend": "LocalJob", "job_id": str(sleeper.pid), "host": hostname(), "start": "1"})
        assert ref.is_alive() is False  # its start time is another process's
        mine = jobref.parse({"backend": "LocalJob", "job_id": str(sleeper.pid), "host": hostname(), "start": start_time(sleeper.pid)})
        assert mine.is_alive() is True
        assert jobref.parse({"backend": "LocalJob", "job_id": "1", "host": "elsewhere"}).is_alive() is None
    finally:
        sleeper.kill()


def test_what_used_to_hang_ends(planted: dict[str, tp.Any], caplog: pytest.LogCaptureFixture) -> None:
    """A removed sweep (its launcher killed): computed again, and the log says so; a half-written
    claim and another host's claim are waited on only while their lease lasts, then taken over
    with a message naming the file and the host."""
    tasks, entries = planted["tasks"], planted["entries"]
    assert read_status(entries[9])[0] == "not submitted"
    with caplog.at_level("WARNING"):
        assert tasks[9].compute() == 18
    assert "a launch that is gone" in caplog.text
    old = time.time() - 2 * lease.LEASE_S
    for x in (6, 7):
        os.utime(entries[x].folder / "claim.json", (old, old))
    with caplog.at_level("WARNING"):
        assert tasks[6].compute() == 12 and tasks[7].compute() == 14
    assert "node-7" in caplog.text and "claim.json" in caplog.text


class Shout(__import__("pydantic").BaseModel):
    text: str = "hi"
    infra: __import__("exca_hydra").TaskInfra = __import__("exca_hydra").TaskInfra()

    @infra.apply
    def run(self) -> dict[str, tp.Any]:
        return {"echo\r\x1b[2K": self.text + "\x1b[2J", "score": float("nan"), "top": float("inf")}


def test_what_a_cache_holds_never_drives_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21: escape sequences, carriage returns and bells from config values, result strings
    and result dict keys are shown escaped by list, table and show; table --format json is
    valid JSON (NaN and infinities as the strings "NaN", "Infinity")."""
    cache = tmp_path / "cache"
    obj = Shout(text="\x1b]0;owned\x07title", infra={"folder": cache})
    obj.run()
    outputs = []
    for argv in (["list", str(cache)], ["table", str(cache)], ["table", str(cache), "--format", "csv"],
                 ["show", str(obj.infra.uid_folder())]):  # fmt: skip
        assert main(argv) == 0
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    for out in outputs:
        assert not any(c in out for c in "\x1b\x07\r"), repr(out)
    assert any("\\x1b]0;owned\\x07title" in out for out in outputs), outputs
    assert any("\\r" in out for out in outputs[1:3]), outputs
    assert main(["table", str(cache), "--format", "json"]) == 0
    def not_json(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    table = json.loads(capsys.readouterr().out, parse_constant=not_json)
    assert table[0]["result.score"] == "NaN" and table[0]["result.top"] == "Infinity"  # not null: None's (redteam-look F11)
