"""Issue 7, item 7: a cache folder that a group shares (setgid folder, umask 002).

Two real users (``useradd``, removed at the end) in a shared group run Python as themselves
(``setpriv``): A computes into a setgid group folder, B reads A's result and computes a new uid
in the same folder, without permission errors; files get the folder's group and are never
writable by the group or others, whatever the umask (issue 21: a member could rewrite a result in
place); a group-writable folder holds results one loads only when that group is opted in. A pickle of another user, or in a folder of another user, is
loaded only by those who opted in (``EXCA_HYDRA_TRUSTED_OWNERS``): otherwise the load fails with
a CacheError, before anything is unpickled (issue 13: a user who creates the cache folders first
in a sticky folder like /tmp cannot plant a result).

Root is needed to create users; the interpreter may live under /root (mode 0700), also behind a
venv's symlink: each user's process then runs the base interpreter through a private bind mount
(``unshare -m``) with the venv's site-packages added, nothing else changes.
"""

from __future__ import annotations

import grp
import json
import os
import pickle
import pwd
import shutil
import site
import stat
import subprocess
import sys
import tempfile
import typing as tp
from dataclasses import dataclass
from pathlib import Path

import pytest

from exca_hydra.cache.store import CacheError, Entry

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
METHOD_DIR = "models.MyTask.compute,0"

# what each user's process runs: one MyTask computation (or cache read), reported as JSON
SCRIPT = """
import json, os, site, sys
for path in filter(None, os.environ.get("EXCA_TEST_SITE", "").split(os.pathsep)):
    site.addsitedir(path)  # a venv's packages, when the base interpreter runs it (see Users.run)
os.umask(int(sys.argv[1], 8))
from models import MyTask
args = json.loads(sys.argv[2])
task = MyTask(x=args["x"], infra={"folder": args["folder"], "mode": args.get("mode", "cached")})
out = {"uid": os.getuid(), "groups": os.getgroups(), "folder": str(task.infra.uid_folder())}
try:
    out["value"] = task.compute()
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


class Marker:
    """Unpickling it creates a folder: shows whether a planted pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (os.mkdir, (self.path,))


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


@dataclass
class Users:
    a: str
    b: str
    group: str
    gid: int
    base: Path
    bind: Path | None  # where the interpreter's prefix is bind-mounted for the users, if needed

    def run(self, user: str, x: int, folder: Path, umask: int = 0o002, mode: str = "cached",
            trusted: str | None = None) -> dict[str, tp.Any]:  # fmt: skip
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.base),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "EXCA_TEST_DIR": str(self.base / "calls"),
        }
        if trusted is not None:
            env["EXCA_HYDRA_TRUSTED_OWNERS"] = trusted
        python = sys.executable
        prefix: list[str] = []
        if self.bind is not None:  # the base interpreter, bind-mounted; a venv's packages through site
            base = os.path.realpath(sys.base_prefix)
            python = str(self.bind / Path(os.path.realpath(sys.executable)).relative_to(base))
            env["LD_LIBRARY_PATH"] = str(self.bind / "lib")  # libpython: its rpath is under /root
            if sys.prefix != sys.base_prefix:
                env["EXCA_TEST_SITE"] = os.pathsep.join(site.getsitepackages())
            prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                      'mount --bind "$0" "$1" && shift && exec "$@"', base, str(self.bind)]  # fmt: skip
        args = json.dumps({"x": x, "folder": str(folder), "mode": mode})
        cmd = [*prefix, "setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--",
               "env", "-i", *(f"{k}={v}" for k, v in env.items()), python, "-c", SCRIPT, oct(umask)[2:], args]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{user}: exit {proc.returncode}\n{proc.stderr}"
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["uid"] == pwd.getpwnam(user).pw_uid and self.gid in out["groups"]
        return out  # type: ignore[no-any-return]

    def shared_folder(self, name: str) -> Path:
        """A setgid folder of the shared group, group-writable (as an admin would set it up)."""
        folder = self.base / name
        folder.mkdir()
        os.chown(folder, 0, self.gid)
        os.chmod(folder, 0o2775)
        return folder

    def calls(self) -> list[str]:
        path = self.base / "calls" / "calls"
        return path.read_text().splitlines() if path.exists() else []


def _sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def users() -> tp.Iterator[Users]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates two users and a group (useradd/groupadd) and runs as them (setpriv)")
    missing = [t for t in ("useradd", "userdel", "groupadd", "groupdel", "setpriv") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    suffix = f"{os.getpid() % 100_000}"
    group, a, b = f"excash{suffix}", f"excaa{suffix}", f"excab{suffix}"
    base = Path(tempfile.mkdtemp(prefix="exca-shared-", dir="/tmp"))
    created: list[tuple[str, str]] = []
    try:
        os.chmod(base, 0o755)
        assert _sh("groupadd", group).returncode == 0
        created.append(("group", group))
        for user in (a, b):  # each with its own primary group (user private groups), like a real site
            proc = _sh("useradd", "-M", "-U", "-G", group, "-s", "/usr/sbin/nologin", user)
            assert proc.returncode == 0, proc.stderr
            created.append(("user", user))
        gid = grp.getgrnam(group).gr_gid
        bind = None
        # a venv's python is a symlink: what the users need is its target, the base prefix and the venv
        needed = [Path(os.path.realpath(sys.executable)).parent, Path(sys.base_prefix), Path(sys.prefix)]
        if not all(_traversable_by_others(path) for path in needed):
            venv_ok = sys.prefix == sys.base_prefix or _traversable_by_others(Path(sys.prefix))
            if not venv_ok or shutil.which("unshare") is None:
                pytest.skip(f"the interpreter ({sys.executable}) is not reachable by other users and cannot be bind-mounted")
            bind = base / "python"
            bind.mkdir()
        ctx = Users(a, b, group, gid, base, bind)
        calls = ctx.shared_folder("calls")
        assert calls.stat().st_gid == gid
        try:
            ctx.run(a, 0, base / "probe-cache")  # can the users run Python at all?
        except AssertionError as e:
            if bind is not None and "mount" in str(e):
                pytest.skip(f"cannot bind-mount the interpreter for the test users: {e}")
            raise
        shutil.rmtree(base / "probe-cache", ignore_errors=True)
        (calls / "calls").unlink(missing_ok=True)
        yield ctx
    finally:
        for kind, name in reversed(created):
            if kind == "user":
                _sh("userdel", name)
                _sh("groupdel", name)  # its private group, if userdel left it
            else:
                _sh("groupdel", name)
        shutil.rmtree(base, ignore_errors=True)
        for kind, name in created:
            lookup = pwd.getpwnam if kind == "user" else grp.getgrnam
            with pytest.raises(KeyError):
                lookup(name)  # cleaned up


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_group_shares_a_setgid_cache(users: Users) -> None:
    cache = users.shared_folder("cache")
    a_uid, b_uid = pwd.getpwnam(users.a).pw_uid, pwd.getpwnam(users.b).pw_uid
    group = f"@{users.group}"
    # A computes into the setgid group folder, umask 002: any member could replace its files,
    # so A loads them only once A opts in to the group (issue 21)
    out = users.run(users.a, 1, cache)
    assert f"writable by the group {users.group}" in out.get("error", "") and f"={group}`" in out["error"], out
    out = users.run(users.a, 1, cache, trusted=group)
    assert out.get("value") == 2, out
    uid_folder = Path(out["folder"])
    assert uid_folder.parent == cache / METHOD_DIR
    files = sorted(uid_folder.iterdir())
    assert [p.name for p in files] == ["config.yaml", "outcome.json", "result.pkl", "uid.yaml"]
    for folder in (cache / METHOD_DIR, uid_folder):  # the kernel's setgid inheritance, umask 002
        assert folder.stat().st_uid == a_uid and folder.stat().st_gid == users.gid
        assert _mode(folder) == 0o2775, oct(_mode(folder))
    for path in files:  # never group-writable (issue 21), the shared group through setgid
        assert path.stat().st_uid == a_uid and path.stat().st_gid == users.gid
        assert _mode(path) == 0o644, (path, oct(_mode(path)))
    result = (uid_folder / "result.pkl").stat()

    # B does not load A's pickle unless B trusts A: here, through their shared group
    out = users.run(users.b, 1, cache)
    assert f"export EXCA_HYDRA_TRUSTED_OWNERS={users.a}" in out.get("error", ""), out
    # B reads A's result from the cache (no recomputation, nothing rewritten)...
    out = users.run(users.b, 1, cache, trusted=group)
    assert out.get("value") == 2, out
    assert users.calls() == ["MyTask:1"]
    after = (uid_folder / "result.pkl").stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_uid) == (result.st_ino, result.st_mtime_ns, a_uid)
    # ...and computes a new uid in the same method folder (created by A) without permission errors
    out = users.run(users.b, 2, cache, trusted=group)
    assert out.get("value") == 4, out
    assert users.calls() == ["MyTask:1", "MyTask:2"]
    b_folder = Path(out["folder"])
    assert b_folder.parent == cache / METHOD_DIR and b_folder.stat().st_uid == b_uid
    assert _mode(b_folder) == 0o2775 and b_folder.stat().st_gid == users.gid
    for path in b_folder.iterdir():
        assert path.stat().st_uid == b_uid and path.stat().st_gid == users.gid and _mode(path) == 0o644
    # A reads B's result the same way
    assert users.run(users.a, 2, cache, trusted=group).get("value") == 4 and len(users.calls()) == 2
    # B recomputes A's entry (mode=force): replaces A's files in the group-writable folder
    out = users.run(users.b, 1, cache, mode="force", trusted=f"{users.a},{group}")
    assert out.get("value") == 2, out
    assert (uid_folder / "result.pkl").stat().st_uid == b_uid and len(users.calls()) == 3

    # with umask 022 the files are not group-writable either
    out = users.run(users.a, 3, cache, umask=0o022, trusted=group)
    assert out.get("value") == 6, out
    folder = Path(out["folder"])
    assert _mode(folder) == 0o2755 and folder.stat().st_gid == users.gid
    assert {_mode(p) for p in folder.iterdir()} == {0o644}
    assert all(p.stat().st_gid == users.gid for p in folder.iterdir())


def test_nobody_elses_pickle_is_loaded_unless_trusted(users: Users) -> None:
    tmp = users.base / "tmp"  # like /tmp: world-writable, sticky, root's
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    cache = tmp / "cache"
    a_uid, b_uid = pwd.getpwnam(users.a).pw_uid, pwd.getpwnam(users.b).pw_uid
    # B gets there first: creates the cache folders (writable by all), computing the uid A will want...
    out = users.run(users.b, 1, cache, umask=0)
    # umask 0: not even B would load it, so it is not computed (refused before, not after)
    assert "Refusing to compute" in out.get("error", "") and "is writable by everyone" in out["error"], out
    uid_folder = Path(out["folder"])
    assert cache.stat().st_uid == b_uid and uid_folder.stat().st_uid == b_uid
    assert not (uid_folder / "result.pkl").exists()
    # ...and puts configs and a pickle of theirs there as its result: unpickling it creates a folder
    from models import MyTask

    task = MyTask(x=1, infra={"folder": str(cache)})
    Entry(uid_folder).write_configs(task.infra.config(), task.infra.config(uid=True))
    for name in ("uid.yaml", "config.yaml"):
        os.chown(uid_folder / name, b_uid, -1)
    marker = tmp / "pwned"
    result = uid_folder / "result.pkl"
    result.write_bytes(pickle.dumps(Marker(marker)))
    os.chown(result, b_uid, -1)
    os.chmod(result, 0o644)
    out = users.run(users.a, 1, cache)
    assert out.get("error", "").startswith("Untrusted: Refusing to load"), out
    assert f"{result} is owned by {users.b}" in out["error"] and "loading a pickle runs its code" in out["error"]
    assert f"`export EXCA_HYDRA_TRUSTED_OWNERS={users.b}`" in out["error"]
    with pytest.raises(CacheError, match="Refusing to load"):
        Entry(uid_folder).load_result()  # root does not trust another user's file either
    assert not marker.exists()
    # A's own result, computed in B's folders, would be refused too (B could replace it): A is
    # refused before computing, and makes nothing there
    out = users.run(users.a, 2, cache)
    assert f"folder {cache / METHOD_DIR} is owned by {users.b}" in out.get("error", ""), out
    assert out["error"].startswith("Untrusted: Refusing to compute") and "use a cache folder of your own" in out["error"]
    assert not Path(out["folder"]).exists()

    # folders writable by everyone (B's umask 0), not sticky: anyone could have put a pickle there
    assert "is writable by everyone and not sticky" in users.run(users.a, 1, cache, trusted=users.b).get("error", "")
    assert not marker.exists()
    for folder in (cache, cache / METHOD_DIR, uid_folder):
        os.chmod(folder, 0o755)  # B removes that access
    # opting in: B's pickles load (here the planted one: the check was all that stopped it)
    assert users.run(users.a, 1, cache, trusted=users.b).get("value", "-") is None
    assert marker.exists()
    shutil.rmtree(marker)
    assert users.run(users.a, 1, cache, trusted=f"{b_uid}").get("value", "-") is None
    shutil.rmtree(marker)
    assert users.run(users.a, 1, cache, trusted=f"@{users.group}").get("value", "-") is None
    assert marker.exists()
