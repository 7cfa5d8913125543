"""The jobs' own folder (submitit's ``%j`` folders and the batch pickle): only its owner may
write it, whatever the umask and the cache's group permissions.

A job process loads the pickles there (its submission, the launch's batch), and loading a pickle
runs its code.  In a group cache (a setgid folder, ``umask 002``) a member of the group could
otherwise put their own pickle in place of ours and run it as us.  So the launching side creates
the folder without group or other write access and submits under a umask that keeps it so, and
the job side loads a pickle only from that folder, owned by itself, with nothing in between
replaceable by anyone else.
"""

from __future__ import annotations

import contextlib
import os
import stat
import typing as tp
from pathlib import Path

from ..cache.errors import CacheError
from ..cache.trust import user_name

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def jobs_root(folder: Path) -> Path:
    """The folder the jobs' files live under: the logs folder, or its parent for a ``%j`` template."""
    return folder.parent if "%" in folder.name else folder


def make_private(root: Path) -> None:
    """Create ``root`` (and its parents, with the umask), then take group and other access away
    from it (what the jobs write there, their logs and returns, hold the configs, secrets too);
    one owned by someone else is refused."""
    root.mkdir(parents=True, exist_ok=True)
    st = root.stat()
    if st.st_uid != os.geteuid():
        raise CacheError(
            f"The folder {root} is owned by {user_name(st.st_uid)}, not by you: the jobs load code or pickles from it, "
            "which would run as you, so it must be yours. Choose another folder (for the jobs' logs: infra.logs, "
            "hydra.launcher.submitit_folder; for a code snapshot: the cache folder or hydra.sweep.dir)."
        )
    if st.st_mode & 0o077:
        os.chmod(root, stat.S_IMODE(st.st_mode) & ~0o077)


@contextlib.contextmanager
def private_umask() -> tp.Iterator[None]:
    """Files and folders made meanwhile (here and by the jobs started, which inherit it, as
    sbatch passes it on) are not writable by the group or others."""
    old = os.umask(0o022)
    os.umask(old | 0o022)
    try:
        yield
    finally:
        os.umask(old)


def check_private(path: Path, root: Path) -> None:
    """Raise CacheError unless ``path`` is under ``root``, ``root`` is a folder of this user that
    nobody else may write, and every entry from it down to ``path`` (no symbolic link) is this
    user's: nobody else could have put the file there."""
    me = os.geteuid()
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise CacheError(f"Refusing to load {path}: it is not in the jobs' folder {root}") from None
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != me or st.st_mode & _OTHERS_WRITE:
        raise CacheError(
            f"Refusing to load {path}: the jobs' folder {root} must be a folder of yours that only you "
            f"can write (it is {stat.filemode(st.st_mode)}, owned by {user_name(st.st_uid)}), or anyone else "
            "could have put a pickle there, and loading it runs its code as you."
        )
    node = root
    for part in relative.parts:
        node = node / part
        st = os.lstat(node)
        if stat.S_ISLNK(st.st_mode) or st.st_uid != me:
            raise CacheError(f"Refusing to load {path}: {node} is not yours (owned by {user_name(st.st_uid)}) or is a link")
