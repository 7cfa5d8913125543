"""The `exca-hydra` cache tool, on a cache filled through the Python API."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cli import main
from exca_hydra.cache.store import Entry
from models import MyTask

METHOD = "models.MyTask.compute,0"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXCA_TEST_DIR", str(tmp_path))
    folder = tmp_path / "cache"
    for x in (1, 2, 3):
        assert MyTask(x=x, infra={"folder": folder}).compute() == 2 * x
    (tmp_path / "fail").write_text("")  # makes MyTask.compute raise
    with pytest.raises(Exception):
        MyTask(x=4, infra={"folder": folder}).compute()
    return folder


def test_list_shows_status_and_values(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(cache)]) == 0
    out = capsys.readouterr().out
    assert out.count("completed") == 3 and out.count("failed") == 1
    assert "x=4" in out and "4 entries" in out
    assert main(["list", str(cache), "--status", "failed"]) == 0
    assert "1 entry" in capsys.readouterr().out


def test_show_one_entry(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failed = MyTask(x=4, infra={"folder": cache}).infra.uid_folder()
    assert main(["show", str(failed)]) == 0
    out = capsys.readouterr().out
    assert "status:  failed" in out and "error:" in out and "x: 4" in out
    assert main(["show", str(cache)]) == 1


def test_explain_a_miss_names_the_differing_field(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(cache), "x=5"]) == 1
    out = capsys.readouterr().out
    assert "Miss" in out and "x: wanted 5, cached" in out
    assert main(["explain", str(cache), "x=2"]) == 0
    assert "Cached:" in capsys.readouterr().out
    # naming a field at its default is no difference: the entry's recorded full config says so
    assert main(["explain", str(cache), "x=2", "y=blublu"]) == 0, capsys.readouterr().out
    assert "Cached:" in capsys.readouterr().out
    assert main(["explain", str(cache), "x=2", "y=other"]) == 1
    assert "y: wanted \"other\", cached \"blublu\"" in capsys.readouterr().out


def test_list_into_a_closed_pipe_is_quiet(cache: Path) -> None:
    proc = subprocess.run(f"{sys.executable} -m exca_hydra.cli list {cache} | head -1", shell=True,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_clear_failed_keeps_results(cache: Path) -> None:
    assert main(["clear", str(cache), "--failed"]) == 0
    assert MyTask(x=4, infra={"folder": cache}).infra.status() == "not submitted"
    assert MyTask(x=1, infra={"folder": cache}).infra.status() == "completed"
    uid = MyTask(x=1, infra={"folder": cache}).infra.uid()
    assert main(["clear", str(cache), "--uid", uid]) == 0
    assert MyTask(x=1, infra={"folder": cache}).infra.status() == "not submitted"
    assert MyTask(x=2, infra={"folder": cache}).infra.status() == "completed"


def test_console_script_is_installed(cache: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "exca_hydra.cli", "list", str(cache)], capture_output=True, text=True)
    assert out.returncode == 0 and "4 entries" in out.stdout


def test_clear_never_deletes_outside_the_folder_given(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13: symbolic links below the folder given are skipped, with a message, not followed."""
    other = tmp_path / "other"  # another cache, reachable through a linked method folder
    (tmp_path / "fail").unlink()
    assert MyTask(x=1, infra={"folder": other}).compute() == 2
    uid = MyTask(x=1, infra={"folder": other}).infra.uid()
    (cache / "linked.Method,0").symlink_to(other / METHOD)
    unrelated = tmp_path / "unrelated"  # a linked uid folder leading anywhere
    unrelated.mkdir()
    (unrelated / "uid.yaml").write_text("x: 9\n")
    (unrelated / "notes.txt").write_text("keep me")
    (cache / METHOD / "x=9-0123456789abcdef").symlink_to(unrelated)

    # (the uid is under two method folders: each named as method/uid, as `list` prints them)
    assert main(["clear", str(cache), "--uid", f"{METHOD}/{uid}", f"linked.Method,0/{uid}", "x=9-0123456789abcdef"]) == 1
    captured = capsys.readouterr()
    assert f"skipping {cache / 'linked.Method,0' / uid}: a symbolic link" in captured.err
    assert f"skipping {cache / METHOD / 'x=9-0123456789abcdef'}: a symbolic link" in captured.err
    assert "1 entry cleared" in captured.out and "Traceback" not in captured.err
    assert not (cache / METHOD / uid).exists()  # the folder given: its entry is cleared
    assert (other / METHOD / uid / "result.pkl").exists()  # the other cache's is not
    assert (unrelated / "notes.txt").read_text() == "keep me"
    # --failed through a linked method folder: the other cache's failure stays
    (other / METHOD / uid / "result.pkl").rename(other / METHOD / uid / "error.pkl")
    assert main(["clear", str(cache), "--failed"]) == 1
    assert (other / METHOD / uid / "error.pkl").exists()
    assert MyTask(x=4, infra={"folder": cache}).infra.status() == "not submitted"
    # the folder given may itself be a link: what it leads to is the folder given
    (tmp_path / "cache-link").symlink_to(cache)
    x2 = MyTask(x=2, infra={"folder": cache}).infra.uid()
    assert main(["clear", str(tmp_path / "cache-link"), "--uid", x2]) == 0
    assert not (cache / METHOD / x2).exists() and (other / METHOD / uid).exists()


class Marker:
    """Unpickling it creates a folder: shows whether a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (os.mkdir, (self.path,))


def test_looking_writes_nothing_and_unpickles_nothing(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Issue 13: list/show (--check too) and table on a read-only cache: nothing written, nothing loaded."""
    killed = MyTask(x=4, infra={"folder": cache}).infra.uid_folder()
    Entry(killed).clear()  # x=4: submitted to a local process that died without an outcome
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    log = str(tmp_path / "x4.err")
    ref = {"backend": "LocalJob", "job_id": str(dead.pid), "folder": str(tmp_path), "stderr": log}
    (killed / "job.json").write_text(json.dumps(ref))
    marker = tmp_path / "pwned"
    done = MyTask(x=1, infra={"folder": cache}).infra.uid_folder()
    (done / "result.pkl").write_bytes(pickle.dumps(Marker(marker)))
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in cache.rglob("*")}

    def read_only(*args: tp.Any, **kwargs: tp.Any) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("exca_hydra.cache.store.atomic_write", read_only)
    assert main(["list", str(cache), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.count("completed") == 3 and f"failed        {METHOD}/{killed.name}" in out, out
    assert main(["list", str(cache)]) == 0
    assert f"submitted     {METHOD}/{killed.name}" in capsys.readouterr().out
    assert main(["show", str(killed), "--check"]) == 0
    out = capsys.readouterr().out
    assert "status:  failed" in out and f"log:     {log}" in out, out
    assert main(["show", str(done)]) == 0 and "preview: " in capsys.readouterr().out
    assert main(["table", str(cache)]) == 0 and main(["explain", str(cache), "x=1"]) == 0
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in cache.rglob("*")} == before
    assert not (killed / "error.pkl").exists() and not marker.exists()


def test_clear_uid_names_one_method_s_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the red team (F21): a default config's uid is the same under every method, and
    `clear CACHE --uid default-...` removed both a task's entry and a MapInfra item cache; the
    method/uid form that `list` prints selected nothing, silently."""
    from exca_hydra.cache.store import Entry

    for method in ("app.Exp.train,0", "app.Feat.embed,0"):
        Entry(tmp_path / method / "default-01e7b720ff566d53").write_configs({}, {})
    assert main(["clear", str(tmp_path), "--uid", "default-01e7b720ff566d53"]) == 2
    err = capsys.readouterr().err
    assert "is the uid of entries of 2 methods" in err and "app.Feat.embed,0/default-01e7b720ff566d53" in err, err
    assert len(list(tmp_path.glob("*/default-*"))) == 2  # nothing removed
    assert main(["clear", str(tmp_path), "--uid", "app.Exp.train,0/default-01e7b720ff566d53"]) == 0
    assert [p.parent.name for p in tmp_path.glob("*/default-*")] == ["app.Feat.embed,0"]
    assert main(["clear", str(tmp_path), "--uid", "nope"]) == 2 and "no entry 'nope' here" in capsys.readouterr().err


def test_list_says_running_for_a_claimed_entry_without_a_job_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """From the red team's notes: an exca_local job (no job.json, its launcher's claim) was listed
    as "not submitted" without --check; a live claim, read like the other small files, says running."""
    from exca_hydra.cache.store import Entry
    from exca_hydra.table import read_status

    entry = Entry(tmp_path / "app.Exp.train,0" / "x=1-0123456789abcdef")
    entry.write_configs({"x": 1}, {"x": 1})
    assert entry.claim()
    before = {p: p.stat().st_mtime_ns for p in entry.folder.iterdir()}
    assert read_status(entry) == "running"
    assert main(["list", str(tmp_path)]) == 0 and capsys.readouterr().out.startswith("running")
    assert {p: p.stat().st_mtime_ns for p in entry.folder.iterdir()} == before  # read, not touched
    entry.release()
    assert read_status(entry) == "not submitted"


def test_sort_descending_is_written_as_the_readme_shows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the red team (redteam-look F12): `--sort -result` was an argparse error."""
    from exca_hydra.cache.store import Entry

    for x in (1, 3, 2):
        entry = Entry(tmp_path / "m.T.f,0" / f"x={x}-0123456789abcdef")
        entry.write_configs({"x": x}, {"x": x})
        entry.write_result(float(x))
    assert main(["table", str(tmp_path), "--sort", "-result", "--format", "csv"]) == 0
    import csv

    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [row["result"] for row in rows] == ["3", "2", "1"], rows


def test_explain_compares_kinds_as_the_uid_does(tmp_path: Path) -> None:
    """redteam-kinds F10: explain compared with ==: it said "Cached" for x=1.0 against an entry of
    x=1, and for f=0.0 against f=-0.0, which the app itself reports missing."""
    from exca_hydra.cache.store import Entry
    from exca_hydra.cli import nearest

    entry = Entry(tmp_path / "m.T.f,0" / "f=-0.0,x=1-0123456789abcdef")
    entry.write_configs({"x": 1, "f": -0.0}, {"x": 1, "f": -0.0})
    entry.write_result(1)
    assert nearest(tmp_path, {"x": 1, "f": -0.0})[0][0] == 0
    for wanted in ({"x": 1.0, "f": -0.0}, {"x": 1, "f": 0.0}, {"x": True, "f": -0.0}):
        assert nearest(tmp_path, wanted)[0][0] == 1, wanted
