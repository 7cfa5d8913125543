"""Issue 21, the cache's edges: a result.pkl that does not load (garbage, raising) is set aside
like a truncated one; results are written owner-only-writable and a file others could have
rewritten is not trusted; cache files are read within bounds."""

from __future__ import annotations

import grp
import os
import pickle
import pwd
import stat
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra
from exca_hydra.cache import trust
from exca_hydra.cache.store import CacheError, Entry
from exca_hydra.cli import main as cli

RUNS: list[int] = []


class Task(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> int:
        RUNS.append(self.x)
        return 2 * self.x


BAD_RESULTS = {
    "raising": b"cbuiltins\nint\n(S'not a number'\ntR.",  # ValueError while rebuilt
    "garbage": b"K\x01)R.",  # TypeError
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_a_result_that_does_not_load_is_set_aside(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    RUNS.clear()
    task = Task(x=3, infra={"folder": tmp_path})
    assert task.run() == 6
    folder = task.infra.uid_folder()
    (folder / "result.pkl").write_bytes(BAD_RESULTS[kind])
    with pytest.raises(CacheError, match="unreadable"):
        Task(x=3, infra={"folder": tmp_path}).run()
    assert (folder / "result.pkl.corrupt").read_bytes() == BAD_RESULTS[kind]
    assert not (folder / "result.pkl").exists()
    assert Task(x=3, infra={"folder": tmp_path}).infra.status() == "failed"
    capsys.readouterr()
    cli(["list", str(tmp_path)])
    out = capsys.readouterr().out
    assert "failed" in out.lower() and "completed" not in out.lower(), out
    assert Task(x=3, infra={"folder": tmp_path, "mode": "retry"}).run() == 6
    assert RUNS == [3, 3]


# ----- results only their owner can write; what others could have rewritten is not loaded -----
def test_cache_files_are_never_group_or_other_writable(tmp_path: Path) -> None:
    old = os.umask(0o002)  # the group-cache recipe
    try:
        task = Task(x=5, infra={"folder": tmp_path})
        assert task.run() == 10
        entry = Entry(task.infra.uid_folder())
        entry.write_error(ValueError("x"), "trace")
        os.umask(0)
        Entry(tmp_path / "other").write_result(1)
    finally:
        os.umask(old)
    files = [p for p in entry.folder.iterdir()] + [tmp_path / "other" / "result.pkl"]
    assert {p.name for p in files} >= {"config.yaml", "uid.yaml", "error.pkl", "error.txt", "outcome.json", "result.pkl"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0, (path, oct(path.stat().st_mode))


def _a_group() -> grp.struct_group:
    """A group that is neither root's nor one's own."""
    me = pwd.getpwuid(os.geteuid())
    return next(g for g in grp.getgrall() if g.gr_gid not in (0, me.pw_gid))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chgrp to a group one is not in")
def test_what_a_group_could_have_rewritten_loads_only_when_it_is_opted_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(trust.ENV, raising=False)
    group = _a_group()
    entry = Entry(tmp_path / "cache" / "m,0" / "x=1")
    entry.write_result(1)
    result = entry.path("result.pkl")
    os.chown(result, -1, group.gr_gid)
    os.chmod(result, 0o664)  # a member could rewrite it in place: its owner stays the same
    with pytest.raises(CacheError, match=f"writable by the group {group.gr_name} .*export {trust.ENV}=@{group.gr_name}"):
        entry.load_result()
    monkeypatch.setenv(trust.ENV, f"@{group.gr_name}")
    assert entry.load_result() == 1
    monkeypatch.delenv(trust.ENV)
    os.chmod(result, 0o644)
    assert entry.load_result() == 1
    # a group-writable folder without the sticky bit: a member could replace the files in it
    os.chown(entry.folder, -1, group.gr_gid)
    os.chmod(entry.folder, 0o2775)
    trust._state = None  # folders are checked once per process
    with pytest.raises(CacheError, match=f"folder {entry.folder} .*writable by the group {group.gr_name}"):
        entry.load_result()
    os.chmod(entry.folder, 0o3775)  # sticky: only owners replace their files
    trust._state = None
    assert entry.load_result() == 1
    os.chmod(entry.folder, 0o2775)
    monkeypatch.setenv(trust.ENV, f"@{group.gr_name}")
    assert entry.load_result() == 1
    monkeypatch.setenv(trust.ENV, "")
    os.chmod(entry.folder, 0o777)  # writable by everyone, not sticky
    trust._state = None
    with pytest.raises(CacheError, match="writable by everyone and not sticky"):
        entry.load_result()


# ----- cache files are read within bounds -----
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'x'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f"], ["a", "b", "c", "d", "e", "f", "g"])
)  # ~300 bytes, 9**7 leaves once expanded
DEEP = "x: " + "[" * 50_000 + "]" * 50_000 + "\n"  # libyaml's C loader recurses: a crash


@pytest.mark.parametrize("content", [BOMB, DEEP], ids=["aliases", "deep"])
def test_a_hostile_cache_file_is_read_within_bounds(tmp_path: Path, content: str) -> None:
    assert len(BOMB) < 400
    task = Task(x=7, infra={"folder": tmp_path})
    assert task.run() == 14
    folder = task.infra.uid_folder()
    for name in ("uid.yaml", "config.yaml"):
        (folder / name).write_text(content)
    code = f"""
import sys, time
from exca_hydra.cli import main
start = time.time()
for command in (["list"], ["table"], ["show", {str(folder)!r}]):
    main([command[0], *command[1:], *([] if command[0] == "show" else [{str(tmp_path)!r}])])
print("ELAPSED", time.time() - start, file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "ELAPSED" in proc.stderr, (proc.returncode, proc.stderr[-2000:])
    assert float(proc.stderr.split("ELAPSED")[1].split()[0]) < 5, proc.stderr
    start = time.time()
    with pytest.raises(CacheError, match="unreadable"):
        Task(x=7, infra={"folder": tmp_path}).run()
    assert time.time() - start < 5
