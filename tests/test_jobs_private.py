"""Issue 21, other users (redteam-uid F5, F6): a job reference someone else wrote is not waited
for, and a job loads its pickles only from a folder nobody else can write, whatever the umask
and the cache's group permissions (a group member swapped a job's submission pickle and ran
code as the job's user)."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache.errors import CacheError
from exca_hydra.execution.private import check_private, make_private

OTHER = 54321  # a user who is not us (root can give files to any uid)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another uid: needs root (CI runs as root)")

TASK = """
import sys, time, pydantic
from exca_hydra import TaskInfra
class Slow(pydantic.BaseModel):
    secs: float = 0.1
    infra: TaskInfra = TaskInfra()
    @infra.apply
    def run(self) -> float:
        time.sleep(self.secs)
        return self.secs
def make(cluster, folder=None):
    return Slow(infra={"folder": folder, "cluster": None if cluster == "none" else cluster})
if __name__ == "__main__":
    task = make(sys.argv[2], sys.argv[1])
    print("status", task.infra.status(), flush=True)
    print("result", task.run(), flush=True)
"""


def _pid1_ref(folder: Path) -> dict[str, tp.Any]:
    start = Path("/proc/1/stat").read_text().rsplit(")", 1)[1].split()[19]  # pid 1 lives forever
    return {"backend": "LocalJob", "job_id": "1", "host": socket.gethostname(), "start": start,
            "stderr": "/dev/null", "folder": str(folder), "submitted_at": time.time()}  # fmt: skip


def _task(tmp_path: Path) -> tuple[Path, tp.Any]:
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(TASK))
    sys.path.insert(0, str(tmp_path))
    try:
        import slow  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    return script, slow


def _chown_tree(path: Path, uid: int) -> None:
    for node in [path, *path.rglob("*")]:
        os.lchown(node, uid, uid)


@pytest.mark.parametrize("cluster", ["none", "local"])
def test_a_folder_planted_by_another_user_is_refused_at_once_not_waited_for(tmp_path: Path, cluster: str) -> None:
    """F5: another user created the entry's folders first (a cache in /tmp) with a job.json naming
    pid 1: run() waited forever, for cluster=None too."""
    script, slow = _task(tmp_path)
    cache = tmp_path / "cache"
    task = slow.make(cluster, str(cache))
    entry = task.infra.uid_folder()
    entry.mkdir(parents=True)
    (entry / "job.json").write_text(json.dumps(_pid1_ref(entry)))
    _chown_tree(cache, OTHER)
    began = time.time()
    out = subprocess.run([sys.executable, str(script), str(cache), cluster], capture_output=True, text=True, timeout=120)
    assert time.time() - began < 60
    assert "status not submitted" in out.stdout, out.stdout + out.stderr[-2000:]
    assert out.returncode != 0 and "Refusing to compute" in out.stderr and f"owned by uid {OTHER}" in out.stderr, out.stderr[-2000:]
    assert sorted(p.name for p in entry.iterdir()) == ["job.json"]  # nothing computed into it


def test_a_job_reference_another_user_wrote_in_our_entry_is_ignored(tmp_path: Path) -> None:
    """F5: a job.json we did not write (a group member's, not opted in) is no job of ours."""
    _, slow = _task(tmp_path)
    task = slow.make("none").infra.clone_obj({"infra.folder": str(tmp_path / "cache"), "secs": 0.2})
    entry = task.infra.uid_folder()
    entry.mkdir(parents=True)
    (entry / "uid.yaml").write_text("secs: 0.2\n")
    (entry / "job.json").write_text(json.dumps(_pid1_ref(entry)))
    os.chown(entry / "job.json", OTHER, OTHER)
    assert task.infra.status() == "not submitted"
    assert task.run() == 0.2  # not a wait for pid 1
    assert task.infra.status() == "completed"


def test_a_job_reference_in_a_folder_without_uid_yaml_is_ignored(tmp_path: Path) -> None:
    _, slow = _task(tmp_path)
    task = slow.make("none").infra.clone_obj({"infra.folder": str(tmp_path / "cache")})
    entry = task.infra.uid_folder()
    entry.mkdir(parents=True)
    (entry / "job.json").write_text(json.dumps(_pid1_ref(entry)))
    assert task.infra.status() == "not submitted"
    assert task.run() == 0.1


def test_the_jobs_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """F6: under umask 002 (the README's group cache) submitit's folders and pickles were group
    writable, so a member of the group could replace a job's submission pickle."""
    script, _ = _task(tmp_path)
    cache = tmp_path / "cache"
    logs_root = cache / "slow.Slow.run,0" / "logs" / "root"
    logs_root.mkdir(parents=True, mode=0o777)
    os.chmod(logs_root, 0o2777)  # left group/other-writable by an earlier version
    out = subprocess.run(["sh", "-c", f"umask 002; exec {sys.executable} {script} {cache} local"], capture_output=True, text=True, timeout=120)
    assert "result 0.1" in out.stdout, out.stderr[-2000:]
    assert not logs_root.stat().st_mode & 0o077  # private: its files hold the configs
    written = list(logs_root.rglob("*"))
    assert any(p.name.endswith("_submitted.pkl") for p in written) and any(p.name.endswith("_result.pkl") for p in written)
    writable = [str(p) for p in written if p.lstat().st_mode & 0o022]
    assert not writable, writable


def _submission(root: Path, job_id: str, marker: Path) -> Path:
    folder = root / job_id
    folder.mkdir(parents=True, exist_ok=True)
    payload = f"import os; open({str(marker)!r}, 'w').write(str(os.getuid()))"
    path = folder / f"{job_id}_submitted.pkl"
    path.write_bytes(b"cbuiltins\nexec\n(" + pickle.dumps(payload, protocol=0)[:-1] + b"tR.")  # exec(payload) when loaded
    return path


def _run_guard(root: Path, job_id: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": job_id, "SUBMITIT_LOCAL_GLOBALID": "0",
           "SUBMITIT_LOCAL_LOCALID": "0", "SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_NODEID": "0",
           "SUBMITIT_LOCAL_JOB_NUM_NODES": "1"}  # fmt: skip
    cmd = [sys.executable, "-u", "-m", "exca_hydra.execution.guard", "-u", "-m", "submitit.core._submit", str(root / "%j")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("how", ["group-writable", "other-owner", "job-folder-other-owner", "pickle-other-owner", "symlink"])
def test_a_job_loads_no_submission_someone_else_could_have_put_there(tmp_path: Path, how: str) -> None:
    """F6, also when a group member renames the logs folder away and plants a tree of their own
    between the submission and the job's start: the job loads nothing from it."""
    root, marker = tmp_path / "logs", tmp_path / "PWNED"
    if how == "symlink":
        elsewhere = tmp_path / "elsewhere"
        _submission(elsewhere, "77", marker)
        root.mkdir(mode=0o755)
        os.symlink(elsewhere / "77", root / "77")
    else:
        path = _submission(root, "77", marker)
        if how == "group-writable":
            os.chmod(root, 0o2775)
        elif how == "other-owner":
            _chown_tree(root, OTHER)
        elif how == "job-folder-other-owner":
            os.chown(path.parent, OTHER, OTHER)
        else:
            os.chown(path, OTHER, OTHER)
    out = _run_guard(root, "77")
    assert not marker.exists(), how
    assert out.returncode != 0 and "Refusing to load" in out.stderr, out.stderr[-2000:]


def test_a_job_loads_its_own_submission_from_its_private_folder(tmp_path: Path) -> None:
    """The control: the same pickle in a private folder of ours is loaded (so the cases above
    refused it, rather than failed some other way)."""
    root, marker = tmp_path / "logs", tmp_path / "LOADED"
    make_private(root)
    _submission(root, "77", marker)
    _run_guard(root, "77")
    assert marker.exists()


def test_a_result_is_loaded_only_from_the_private_folder(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    make_private(root)
    (root / "5").mkdir()
    result = root / "5" / "5_0_result.pkl"
    result.write_bytes(pickle.dumps(1))
    check_private(result, root)
    os.chown(result, OTHER, OTHER)
    with pytest.raises(CacheError, match="is not yours"):
        check_private(result, root)
    os.chown(root, OTHER, OTHER)
    with pytest.raises(CacheError, match="must be a folder of yours"):
        check_private(result, root)
    with pytest.raises(CacheError, match="owned by uid|owned by 54321"):
        make_private(root)


def test_a_sweep_over_someone_elses_entries_is_refused_in_one_message(tmp_path: Path) -> None:
    """redteam-users F1, F2: another user's planted entries were summarised as cached (their
    outcome.json's preview as our result and best), and a job to compute in their folders failed
    with a traceback whose advice (delete the entry) could not work."""
    from test_launcher import APPS, Ctx

    ctx = Ctx(tmp_path)
    plain = APPS / "plain" / "app.py"
    args = ("hydra/launcher=exca_local", "hydra/sweeper=exca", f"hydra.sweeper.folder={ctx.cache}")
    r = ctx.run(plain, "x=1,3", *args)
    assert r.code == 0 and len(ctx.lines()) == 2, r.err
    _chown_tree(ctx.cache, OTHER)  # as if another user had computed them (or planted them) first
    (outcome,) = [p for p in ctx.cache.rglob("outcome.json") if "x=3" in str(p)]
    outcome.write_text(outcome.read_text().replace("30", "999"))
    before = sorted(str(p) for p in ctx.cache.rglob("*"))
    for sweep in ("x=1,3", "x=1,3,5"):
        r = ctx.run(plain, sweep, *args)
        assert r.code == 1 and "would use someone else's cache files; nothing was launched" in r.err, r.err
        assert f"is owned by uid {OTHER}" in r.err and "EXCA_HYDRA_TRUSTED_OWNERS" in r.err
        assert "Traceback" not in r.err and "999" not in r.out + r.err
    assert len(ctx.lines()) == 2  # nothing ran
    assert sorted(str(p) for p in ctx.cache.rglob("*")) == before  # nothing made inside their folders
    r = ctx.run(plain, "x=5", *args, "hydra.sweeper.mode=force")
    assert r.code == 1 and "Refusing to compute" in r.err and "Traceback" not in r.err, r.err
    assert "use a cache folder of your own" in r.err


def test_a_secret_given_as_an_override_is_shown_as_stars(tmp_path: Path) -> None:
    """redteam-kinds F3: the launch lines, the summary, the dry run and the sweep's
    .exca/jobs.jsonl (which the timeline prints) showed a secret override in clear."""
    from test_launcher import APPS, Ctx

    ctx = Ctx(tmp_path)
    plain = APPS / "plain" / "app.py"
    args = ("hydra/launcher=exca_local", "hydra/sweeper=exca", f"hydra.sweeper.folder={ctx.cache}")
    secrets = ("+api-key=SEKRIT1", "+db.password=SEKRIT2", "+url=postgres://u:SEKRIT3@h/db")
    for extra in ((), ("hydra.sweeper.dry_run=true",)):
        r = ctx.run(plain, "x=1,2", *secrets, "+tokenizer=gpt2", *args, *extra)
        assert r.code == 0, r.err
        assert "SEKRIT" not in r.out + r.err and "+api-key=***" in r.out + r.err and "+tokenizer=gpt2" in r.out + r.err
    records = list(tmp_path.rglob("jobs.jsonl"))
    assert records and not any("SEKRIT" in p.read_text() for p in records)
    assert "+db.password=***" in records[0].read_text()


def test_a_failed_jobs_first_line_shows_a_secret_override_as_stars(tmp_path: Path) -> None:
    """redteam-kinds F29: "Job ... (#1: x=abc +api-key=SEKRIT) failed" was printed by the job,
    in clear, on the terminal and in its log."""
    from test_launcher import APPS, Ctx

    ctx = Ctx(tmp_path)
    r = ctx.run(APPS / "plain" / "app.py", "x=abc", "+api-key=SEKRIT1", "hydra/launcher=exca_local", "hydra/sweeper=exca",
                f"hydra.sweeper.folder={ctx.cache}")  # fmt: skip
    assert r.code != 0 and "+api-key=***" in r.out + r.err, r.err
    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".err", ".out", ".log")]
    assert logs and not any("SEKRIT" in text for text in [r.out, r.err, *logs])


SECRET_APP = """
import pydantic, exca_hydra
from exca_hydra import TaskInfra

class Exp(pydantic.BaseModel):
    seed: int = 1
    token: pydantic.SecretStr = pydantic.Field(pydantic.SecretStr("x" * 20), min_length=20)
    infra: TaskInfra = TaskInfra()
    @infra.apply
    def train(self) -> str:
        return "ok"

@exca_hydra.main(version_base="1.3")
def main(exp: Exp) -> str:
    return exp.train()

if __name__ == "__main__":
    main()
"""


def test_an_invalid_secret_is_not_printed(tmp_path: Path) -> None:
    """redteam-kinds F17: a SecretStr that failed validation was printed in clear, in the
    override and in pydantic's "(got '...')". (Hydra's own "Error executing job with overrides"
    line is Hydra's.)"""
    from test_launcher import Ctx

    app = tmp_path / "secret_app.py"
    app.write_text(SECRET_APP)
    ctx = Ctx(tmp_path)
    r = ctx.run(app, "seed=1,2", "+token=SHORTSEKRIT", f"infra.folder={ctx.cache}")
    assert r.code == 1 and "(got '***')" in r.err and "+token=***" in r.err, r.err
    assert "SHORTSEKRIT" not in r.out + r.err.replace("['+token=SHORTSEKRIT']", ""), r.err


def _entry_with_result(tmp_path: Path) -> tp.Any:
    _, slow = _task(tmp_path)
    task = slow.make("none").infra.clone_obj({"infra.folder": str(tmp_path / "cache"), "secs": 0.01})
    task.run()
    return task


@pytest.mark.parametrize("name", ["job.json", "uid.yaml", "outcome.json", "error.txt", "claim.json"])
def test_a_named_pipe_in_place_of_a_cache_file_hangs_nothing(tmp_path: Path, name: str) -> None:
    """redteam-users F3: a fifo planted as a cache file blocked every read command, status() and
    run() forever (open() waits for a writer)."""
    task = _entry_with_result(tmp_path)
    folder = task.infra.uid_folder()
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)
    cache = str(tmp_path / "cache")
    commands = [["list", cache], ["list", cache, "--check"], ["table", cache], ["show", str(folder)]]
    for args in commands:
        out = subprocess.run([sys.executable, "-m", "exca_hydra.cli", *args], capture_output=True, text=True, timeout=30)
        assert out.returncode in (0, 1), (args, out.stderr[-1000:])
    probe = ("import sys; sys.path.insert(0, %r); import slow\n"
             "t = slow.Slow(secs=0.01, infra={'folder': %r})\n"
             "print(t.infra.status())\ntry:\n    print(t.run())\nexcept Exception as e:\n    print(type(e).__name__)") % (str(tmp_path), cache)  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr[-1000:]


def test_show_does_not_follow_a_link_out_of_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """redteam-users F4: error.txt planted as a link to a file only the looker may read: `show`
    printed its last line."""
    from exca_hydra.cli import main

    task = _entry_with_result(tmp_path)
    folder = task.infra.uid_folder()
    private = tmp_path / "private.txt"
    private.write_text("-----END KEY----- root-only-secret\n")
    os.symlink(private, folder / "error.txt")
    (folder / "outcome.json").unlink()
    os.symlink(private, folder / "outcome.json")
    main(["show", str(folder)])
    main(["table", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert "root-only-secret" not in captured.out + captured.err


def test_a_claim_dated_in_the_future_or_not_a_file_is_not_a_live_lease(tmp_path: Path) -> None:
    """redteam-users F6: a claim whose mtime is ahead (a clock ahead, or set by hand) was waited
    on forever; a pipe in its place too."""
    from exca_hydra.cache import lease

    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps({"host": "othernode", "pid": 4242, "start": "1", "time": 4102444800}))
    os.utime(claim, (4102444800, 4102444800))  # 2100
    assert "in the future" in (lease.expired(claim) or "")
    claim.unlink()
    os.mkfifo(claim)
    assert "not a claim file" in (lease.expired(claim) or "")


def test_a_waiter_whose_other_process_ended_without_an_outcome_computes(tmp_path: Path) -> None:
    """redteam-users F6 (a): a claim from another host expired while run() waited for it: run()
    then raised a bogus "Failed job with an unreadable error file" instead of computing."""
    from exca_hydra.cache import lease

    _, slow = _task(tmp_path)
    task = slow.make("none").infra.clone_obj({"infra.folder": str(tmp_path / "cache"), "secs": 0.01})
    folder = task.infra.uid_folder()
    folder.mkdir(parents=True)
    claim = folder / "claim.json"
    claim.write_text(json.dumps({"host": "othernode", "pid": 4242, "start": "1", "time": time.time()}))
    old = lease.LEASE_S
    lease.LEASE_S = 1.0  # (the other host's lease ends soon)
    try:
        assert task.run() == 0.01
    finally:
        lease.LEASE_S = old


def test_a_job_that_ended_without_an_error_file_says_so(tmp_path: Path) -> None:
    """redteam-users F11: a job the guard refused (or killed before writing anything) was
    reported as "Failed job with an unreadable error file ... error.pkl: No such file"."""
    from exca_hydra.cache.store import Entry

    entry = Entry(tmp_path / "e")
    entry.folder.mkdir()
    (entry.folder / "uid.yaml").write_text("x: 1\n")
    (entry.folder / "job.json").write_text(json.dumps({"backend": "SlurmJob", "job_id": "5", "stderr": "/logs/5_0_log.err"}))
    message = str(entry.load_error())
    assert "ended without a result or an error" in message and "/logs/5_0_log.err" in message and "unreadable" not in message


def test_a_code_snapshot_folder_someone_else_made_is_refused(tmp_path: Path) -> None:
    """redteam-users F9, F10: another user pre-created <folder>/code (in a sticky /tmp-like
    folder); the snapshot went into it, and she swapped in her own package, run as the victim."""
    from exca_hydra.workdir import WorkDir

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    code = shared / "code"
    code.mkdir(mode=0o777)
    os.chown(code, OTHER, OTHER)
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text("x = 1\n")
    with pytest.raises(CacheError, match=f"uid {OTHER}|{OTHER}"):
        WorkDir(copied=[project]).copy(code)
    assert list(code.iterdir()) == []
    mine = shared / "mine"
    target = WorkDir(copied=[project]).copy(mine)
    assert (target / "project" / "app.py").exists() and not mine.stat().st_mode & 0o077


def test_a_local_job_of_python_dash_c_imports_from_the_submission_folder(tmp_path: Path) -> None:
    """redteam-users F14: the job's guard runs with its folder off sys.path (nothing imported from
    a snapshot before its check); the submission's folder is put back before the config is
    loaded, as `python -m` had it, so `python -c` from a project folder works."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "proj_task.py").write_text(
        "import pydantic\nfrom exca_hydra import TaskInfra\nclass Task(pydantic.BaseModel):\n    x: int = 1\n"
        "    infra: TaskInfra = TaskInfra()\n    @infra.apply\n    def run(self) -> int:\n        return self.x * 3\n"
    )
    code = f"from proj_task import Task; print(Task(x=5, infra={{'folder': {str(tmp_path / 'cache')!r}, 'cluster': 'local'}}).run())"
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "15", out.stderr[-2000:]


def test_table_says_which_rows_someone_else_wrote(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """redteam-users F15: table --best picked another user's (hand-edited) row as the best, unmarked."""
    import logging as logging_

    import exca_hydra

    task = _entry_with_result(tmp_path)
    _chown_tree(tmp_path / "cache", OTHER)
    with caplog.at_level(logging_.WARNING):
        found = exca_hydra.results(str(tmp_path / "cache"))
    assert len(found) == 1 and f"1 entry written by someone you do not trust ({OTHER}: 1)" in caplog.text
    assert task.infra.uid_folder().exists()
