"""Claims on items of a MapInfra folder: which process computes which keys right now.

A claim is a lease: ``claims/<token>.json`` lists the keys a process computes (itself, or through
the jobs it submitted and waits for), with its host and pid. Its holder touches it every
``HEARTBEAT_S``; it is stale once its process is gone (same host) or it has not been touched for
``LEASE_S`` (any host). Claims are taken under a short lock (``claims/lock``, created exclusively),
so two processes asking for overlapping keys split them: each key is computed once, and the
other process waits for it.
"""

from __future__ import annotations

import json
import os
import threading
import time
import typing as tp
import uuid
from pathlib import Path

from . import lease
from .errors import CacheNotWritable
from .host import process_alive

CLAIMS = "claims"
LOCK = "lock"
HEARTBEAT_S = 20.0
LEASE_S = 90.0  # not touched for this long: its holder is gone (another host, or frozen)
LOCK_STALE_S = 30.0  # the lock is held for milliseconds: older than this, its holder died


def _me() -> dict[str, tp.Any]:
    return lease.record()  # host, pid, process start time: a claim's owner as leases name it


def _dead(owner: dict[str, tp.Any], mtime: float, lease_s: float) -> bool:
    """Its owner is known dead (this host; a reused pid is not the owner), or it was not renewed."""
    pid = int(owner.get("pid", -1))
    if process_alive(str(owner.get("host", "")), pid, str(owner.get("start", ""))) is False:
        return True
    return time.time() - mtime > lease_s


class ItemClaims:
    """This process's claims on the items of one folder (one claim file per ``take``)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder) / CLAIMS
        self.mine: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, keys: tp.Sequence[str]) -> tuple[list[str], list[str]]:
        """Claim the keys nobody else holds: (mine, held by others)."""
        if not keys:
            return [], []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheNotWritable(f"Cannot compute items in {self.folder.parent}: {e.strerror or e}") from e
        with self._locked():
            held = self.held()
            mine = [k for k in keys if k not in held]
            others = [k for k in keys if k in held]
            if mine:
                path = self.folder / f"{uuid.uuid4().hex[:16]}.json"
                tmp = path.with_name("." + path.name)
                tmp.write_text(json.dumps({**_me(), "keys": mine}))
                os.replace(tmp, path)
                self.mine.append(path)
                self._beat()
        return mine, others

    def held(self) -> set[str]:
        """Keys claimed by live holders (stale claims are removed on the way)."""
        out: set[str] = set()
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".json") and not n.startswith(".")]
        except FileNotFoundError:
            return out
        for path in (self.folder / n for n in names):
            if path in self.mine:
                continue
            try:
                mtime = path.stat().st_mtime
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if _dead(data, mtime, LEASE_S):
                path.unlink(missing_ok=True)
                continue
            out.update(data.get("keys", ()))
        return out

    def release(self) -> None:
        self._stop.set()
        for path in self.mine:
            path.unlink(missing_ok=True)
        self.mine = []
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None
        self._stop = threading.Event()

    def _beat(self) -> None:
        if self._thread is not None:
            return
        stop = self._stop

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                for path in list(self.mine):
                    try:
                        os.utime(path)
                    except OSError:
                        pass

        self._thread = threading.Thread(target=beat, name="exca-item-claims", daemon=True)
        self._thread.start()

    class _Lock:
        def __init__(self, path: Path) -> None:
            self.path = path

        def __enter__(self) -> None:
            delay = 0.002
            while True:
                if not lease.create(self.path, json.dumps(_me())):
                    try:
                        stat = self.path.stat()
                    except OSError:
                        continue  # released meanwhile
                    mtime, inode = stat.st_mtime, stat.st_ino
                    try:
                        owner = json.loads(self.path.read_text() or "{}")
                    except (OSError, ValueError):
                        owner = {}  # half written: judged by its age
                    owner = owner if isinstance(owner, dict) else {}
                    if _dead(owner, mtime, LOCK_STALE_S) if owner else time.time() - mtime > LOCK_STALE_S:
                        # only the lock judged dead goes: a new holder's lock, created since, stays
                        lease.move_aside(self.path, judged=inode)
                        continue
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    continue
                return

        def __exit__(self, *exc: tp.Any) -> None:
            self.path.unlink(missing_ok=True)

    def _locked(self) -> ItemClaims._Lock:
        return ItemClaims._Lock(self.folder / LOCK)
