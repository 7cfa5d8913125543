"""Whose pickles may be loaded: unpickling runs code, so nobody else's code may run by default.

A ``result.pkl`` or ``error.pkl`` is loaded only when the file and every folder on its path, as
written and with symlinks resolved, are owned by you, by root, or by an owner you trust through
``EXCA_HYDRA_TRUSTED_OWNERS`` (comma-separated user names or uids, ``@group`` for a group's
members, ``*`` for everyone); and nobody else may have rewritten it: the file, and the folders
without the sticky bit, must not be writable by everyone, nor by a group unless it is opted in
(``@group``), root's, or one's own private group (a file rewritten in place keeps its owner). Anyone else who owns
one of them could have put the pickle there (e.g. by creating the cache folders first in ``/tmp``).

Cost: one fstat and one lstat of the file, one lstat of its folder; the folders above are checked
once per process (and again when the setting changes).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
import typing as tp

from .errors import CacheError, Untrusted

ENV = "EXCA_HYDRA_TRUSTED_OWNERS"
_MAX_CACHED = 10_000


class _Trust:
    def __init__(self, setting: str, me: int) -> None:
        self.key = (setting, me)
        self.setting = setting
        items = [item.strip() for item in setting.split(",") if item.strip()]
        self.everyone = "*" in items
        self.uids = {me, 0}
        self.groups: list[tp.Any] = []
        for item in items:
            try:
                if item.startswith("@"):
                    name = item[1:]
                    self.groups.append(grp.getgrgid(int(name)) if name.isdigit() else grp.getgrnam(name))
                elif item != "*":
                    self.uids.add(int(item) if item.isdigit() else pwd.getpwnam(item).pw_uid)
            except KeyError:  # an unknown name trusts nobody: said once, a typo is not silent
                logging.getLogger(__name__).warning("%s names %s, which this machine does not know: it trusts nobody", ENV,
                                                    f"no group {item[1:]!r}" if item.startswith("@") else f"no user {item!r}")  # fmt: skip
        self.members: dict[int, bool] = {}
        self.gids: dict[int, bool] = {}  # groups whose members may write what one loads
        self.folders: set[str] = set()  # paths as written, each checked up to /

    def trusts(self, uid: int) -> bool:
        if self.everyone or uid in self.uids:
            return True
        if uid not in self.members:
            try:
                user = pwd.getpwuid(uid)
            except KeyError:
                self.members[uid] = False
            else:
                self.members[uid] = any(user.pw_gid == g.gr_gid or user.pw_name in g.gr_mem for g in self.groups)
        return self.members[uid]

    def trusts_group(self, gid: int) -> bool:
        """Its members may rewrite what one loads: root's group, one's own private group (no
        other member), or a group opted in (``@group``)."""
        if self.everyone or gid == 0:
            return True
        if gid not in self.gids:
            try:
                group = grp.getgrgid(gid)
                me = pwd.getpwuid(os.geteuid())
            except KeyError:
                self.gids[gid] = False
            else:
                private = gid == me.pw_gid and group.gr_name == me.pw_name and set(group.gr_mem) <= {me.pw_name}
                self.gids[gid] = private or any(g.gr_gid == gid for g in self.groups)
        return self.gids[gid]

    def check(self, st: os.stat_result, node: str, path: tp.Any) -> None:
        is_file = not stat.S_ISDIR(st.st_mode)
        if is_file and st.st_mode & stat.S_IWOTH and not self.everyone:
            raise _refused(
                f"{node} is writable by everyone (mode {stat.filemode(st.st_mode)}), so anyone could have "
                f"written it, and loading a pickle runs its code. Remove that access (chmod o-w {node}) "
                f"if you trust its content, or delete {path} to recompute.",
                path,
            )
        if self.trusts(st.st_uid):
            # others who may write it (a folder's sticky bit keeps them from replacing its files)
            if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP) and (is_file or not st.st_mode & stat.S_ISVTX):
                if st.st_mode & stat.S_IWOTH and not self.everyone:
                    raise _refused(
                        f"the folder {node} is writable by everyone and not sticky (mode "
                        f"{stat.filemode(st.st_mode)}), so anyone could have replaced what it holds, and "
                        f"loading a pickle runs its code. Remove that access (chmod o-w {node}) if you "
                        f"trust its content, or delete {path} to recompute.",
                        path,
                    )
                if st.st_mode & stat.S_IWGRP and not self.trusts_group(st.st_gid):
                    raise _group_refused(st, node, path, is_file, self.setting)
            return
        owner, me = user_name(st.st_uid), os.geteuid()
        setting = f"{self.setting},{owner}" if self.setting.strip() else owner
        who = f"{owner} (uid {st.st_uid})" if owner != str(st.st_uid) else f"uid {owner}"
        raise _refused(
            f"the {'file' if is_file else 'folder'} {node} is owned by {who}, not by you "
            f"({user_name(me)}){'' if me == 0 else ' or root'}, so they could have put a pickle there, "
            f"and loading a pickle runs its code. If you trust {owner}, opt in with "
            f"`export {ENV}={setting}` (comma-separated user names or uids, @group for a group's "
            f"members); otherwise {_remedy(node, path)}.",
            path,
        )

    def check_folders(self, folder: str, path: tp.Any, depth: int = 0) -> None:
        """``folder`` and each folder above it; a symlink: its target's folders too."""
        checked = []
        while folder not in self.folders:
            st = os.lstat(folder)
            if stat.S_ISLNK(st.st_mode):
                if depth > 40:
                    raise _refused(f"too many symbolic links under {folder}", path)
                self.check_folders(os.path.realpath(folder), path, depth + 1)
            else:
                self.check(st, folder, path)
            checked.append(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        if len(self.folders) > _MAX_CACHED:
            self.folders.clear()
        self.folders.update(checked)


def _group_refused(st: os.stat_result, node: str, path: tp.Any, is_file: bool, setting: str) -> Exception:
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    opt_in = f"{setting},@{group}" if setting.strip() else f"@{group}"
    what = f"{node} is" if is_file else f"the folder {node} (not sticky) is"
    return _refused(
        f"{what} writable by the group {group} (mode {stat.filemode(st.st_mode)}), so any of its "
        f"members could have rewritten {'it' if is_file else 'what it holds'}, and loading a pickle runs "
        f"its code. If you trust that group, opt in with `export {ENV}={opt_in}`; otherwise remove "
        f"that access (chmod g-w {node}) or delete {path} to recompute.",
        path,
    )


def _remedy(node: str, path: tp.Any) -> str:
    """What to do instead of trusting: remove the file, or (a folder above it is someone else's:
    removing the entry would not help) use a cache folder of one's own."""
    if os.path.abspath(node) == os.path.abspath(os.fspath(path)) and not os.path.isdir(node):
        try:  # in a folder of someone else's, a new result would be refused too
            folder_owner = os.stat(os.path.dirname(os.path.abspath(node))).st_uid
        except OSError:
            folder_owner = os.geteuid()
        if _current().trusts(folder_owner):
            return f"delete {path} to recompute"
    return f"use a cache folder of your own ({node} is not)"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _refused(why: str, path: tp.Any) -> Exception:
    return Untrusted(f"Refusing to load {path}: {why}")


_state: _Trust | None = None


def _current() -> _Trust:
    global _state
    key = (os.environ.get(ENV, ""), os.geteuid())
    if _state is None or _state.key != key:
        _state = _Trust(*key)
    return _state


def trusted_owner(uid: int) -> bool:
    """Whether a file owned by ``uid`` is trusted: yours, root's, or an owner opted in."""
    return _current().trusts(uid)


def check_folder_trusted(folder: tp.Any) -> None:
    """Raise CacheError unless a pickle written in ``folder`` could later be loaded: checked
    before computing, rather than refusing the result once computed."""
    name = os.path.abspath(os.fspath(folder))
    while not os.path.lexists(name) and os.path.dirname(name) != name:  # not made yet: where it would be
        name = os.path.dirname(name)
    try:
        _current().check_folders(name, name)
    except CacheError as e:
        raise Untrusted(str(e).replace(f"Refusing to load {name}", f"Refusing to compute {os.fspath(folder)}", 1)) from None


def check_trusted(f: tp.BinaryIO, path: tp.Any) -> None:
    """Raise CacheError unless the open pickle ``f`` (opened as ``path``) may be loaded."""
    state = _current()
    name = os.fspath(path)
    if not os.path.isabs(name):
        name = os.path.join(os.getcwd(), name)  # not normalized: '..' after a symlink is the kernel's
    st = os.fstat(f.fileno())
    state.check(st, name, path)
    link = os.lstat(name)
    if (link.st_dev, link.st_ino) != (st.st_dev, st.st_ino):
        # a symlink (or replaced since it was opened): the folders of where it leads count too
        state.check_folders(os.path.dirname(os.path.realpath(name)), path)
    state.check_folders(os.path.dirname(name), path)
