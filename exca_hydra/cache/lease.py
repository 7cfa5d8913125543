"""Claims as leases: "this process is computing that" in one small file, created with O_EXCL so
one process of several wins, naming its owner (host, pid, process start time) and renewed by a
heartbeat (its mtime) while the owner lives. A claim is taken over only when its owner is known
dead (this host) or its lease expired (another host, or a claim left half-written), atomically:
one rename wins."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
import typing as tp
import uuid
from pathlib import Path

from .records import open_file
from .host import hostname, process_alive, start_time

LEASE_S = 120.0  # a claim not renewed for this long has no live owner
RENEW_S = 20.0  # how often the owner's heartbeat renews its claims


def record() -> dict[str, tp.Any]:
    pid = os.getpid()
    return {"host": hostname(), "pid": pid, "start": start_time(pid), "time": time.time()}


def read(path: Path) -> dict[str, tp.Any] | None:
    """The owner recorded in a claim: None without a claim, {} for one not (yet) written."""
    try:
        with open_file(path, follow=False) as f:
            data = f.read(65536)
        owner = json.loads(data)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ELOOP):  # a pipe, a link: no claim this library wrote
            return {"!unusable": str(e)}
        return {}
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def expired(path: Path) -> str | None:
    """Why the claim has no live owner (None: it has one, or there is no claim)."""
    owner = read(path)
    if owner is None:
        return None
    old = age(path)
    if old is None:
        return None
    if "!unusable" in owner:
        return f"{path} is not a claim file ({owner['!unusable']})"
    if old < -LEASE_S:  # a heartbeat dated ahead would keep the lease alive until then
        return f"{path} is dated {-old:.0f} s in the future (a clock ahead, or written by hand): not a live lease"
    if not owner:
        return f"{path} was left empty {old:.0f} s ago (its writer died)" if old > LEASE_S else None
    alive = process_alive(str(owner.get("host", "")), int(owner.get("pid", -1)), str(owner.get("start", "")))
    if alive is False:
        return f"{path}: its owner, pid {owner.get('pid')} on {owner.get('host')}, is gone"
    if alive is None and old > LEASE_S:
        return f"{path}: its owner on host {owner.get('host')} (pid {owner.get('pid')}) has not renewed it for {old:.0f} s"
    return None


def describe(path: Path) -> str:
    owner, old = read(path), age(path)
    if owner is None or old is None:
        return f"{path}: no claim"
    if not owner:
        return f"{path} (being written, {old:.0f} s old)"
    return f"{path} (pid {owner.get('pid')} on {owner.get('host')}, renewed {old:.0f} s ago; lease {LEASE_S:.0f} s)"


def create(path: Path, text: str, mode: int = 0o644) -> bool:
    """The one exclusive create under every claim (leases, pull-worker and item claims, their
    locks): ``path`` holding ``text``, or False when it exists. A failed write removes the file
    and raises (OSError: full disk, read-only folder)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return True


def take(path: Path) -> bool:
    """Create the claim (O_EXCL) and write this process as its owner; False when a live owner
    holds it. An expired claim is moved aside first (one rename wins) and the creation tried
    again. OSError (full disk, read-only folder) propagates, leaving no empty claim behind."""
    for _ in range(3):
        if not create(path, json.dumps(record())):
            if expired(path) is None:
                return False
            taken = _take_over(path)
            if taken is None:
                continue  # gone meanwhile: race for the creation
            return taken
        _HEARTBEAT.add(path)
        return True
    return False


def _take_over(path: Path) -> bool | None:
    """Replace an expired claim by this process's: the one process that creates the takeover
    token of that claim (its inode and mtime) replaces it, by a rename over it; None when the
    claim is gone meanwhile."""
    try:
        seen = path.stat()
        # judged again on the file just seen: the claim judged expired before may have been
        # replaced by a winner's fresh one since, which must not be taken over in its turn
        if expired(path) is None:
            return False
        if (path.stat().st_ino, path.stat().st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):
            return None
    except FileNotFoundError:
        return None
    token = path.with_name(f".{path.name}.takeover-{seen.st_ino}-{seen.st_mtime_ns}")
    if not create(token, ""):
        if (age(token) or 0.0) > LEASE_S:  # its taker died: the next attempt may go ahead
            token.unlink(missing_ok=True)
        return False
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(record()))
        try:
            now = path.stat()
        except FileNotFoundError:
            return None
        if (now.st_ino, now.st_mtime_ns) != (seen.st_ino, seen.st_mtime_ns):
            return False  # renewed or replaced since it was judged
        os.replace(tmp, path)
        _HEARTBEAT.add(path)
        return True
    finally:
        tmp.unlink(missing_ok=True)
        token.unlink(missing_ok=True)


def move_aside(path: Path, judged: int | None = None) -> bool:
    """Rename an expired claim away; True when this process's rename took the claim judged
    expired (``judged``: the inode of the file judged; another process's fresh claim, created in
    between, is put back)."""
    try:
        seen = path.stat().st_ino if judged is None else judged
    except OSError:
        return True  # gone already: create it again
    aside = path.with_name(f".{path.name}.expired-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # another process moved it: race for the creation
    except OSError:
        return False
    try:
        if aside.stat().st_ino != seen:  # a fresh claim replaced the expired one meanwhile
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            return False
        return True
    finally:
        aside.unlink(missing_ok=True)


def release(path: Path) -> None:
    """Remove the claim if this process owns it."""
    _HEARTBEAT.discard(path)
    owner = read(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == hostname():
        path.unlink(missing_ok=True)


class _Heartbeat:
    """One daemon thread per process renews the mtime of every claim the process holds."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, path: Path) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self.paths = set()  # a forked child: its parent's claims are its parent's to renew
            self.paths.add(path)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()  # a forked child starts its own
                self.thread = threading.Thread(target=self._run, name="exca-claims", daemon=True)
                self.thread.start()

    def discard(self, path: Path) -> None:
        with self.lock:
            self.paths.discard(path)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_S)
            with self.lock:
                paths = list(self.paths) if self.pid == os.getpid() else []
            for path in paths:
                try:
                    os.utime(path)
                except OSError:
                    pass


_HEARTBEAT = _Heartbeat()


def _after_fork() -> None:  # the parent's heartbeat thread may have held the lock at the fork
    _HEARTBEAT.lock = threading.Lock()
    _HEARTBEAT.paths = set()
    _HEARTBEAT.thread = None


os.register_at_fork(after_in_child=_after_fork)
