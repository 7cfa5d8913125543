"""Issue 13, "Nobody else's code runs": whose pickles are loaded (in this process, as root).

Another user is uid 4242 (no account needed): root chowns the files and folders it "created".
Real users and processes: tests/test_shared_cache.py.
"""

from __future__ import annotations

import os
import pickle
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache import trust
from exca_hydra.cache.store import CacheError, Entry

OTHER = 4242
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chowns files to another uid")


class Marker:
    """Unpickling it creates a folder: shows whether a planted pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (os.mkdir, (self.path,))


def _as_other(*paths: Path) -> None:
    for path in paths:
        os.chown(path, OTHER, -1, follow_symlinks=False)


def _plant(entry_folder: Path, marker: Path, name: str = "result.pkl") -> Path:
    """What the other user does: create the entry's folders and put a pickle of theirs there."""
    entry_folder.mkdir(parents=True)
    path = entry_folder / name
    path.write_bytes(pickle.dumps(Marker(marker)))
    return path


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(trust.ENV, raising=False)


def test_folders_created_first_by_another_user_in_a_sticky_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"  # like /tmp: world-writable, sticky, root's
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    marker = tmp_path / "pwned"
    folder = tmp / "cache" / "m,0" / "x=1-0123456789abcdef"
    planted = _plant(folder, marker)
    _as_other(tmp / "cache", folder.parent, folder, planted)
    with pytest.raises(CacheError, match="Refusing to load") as info:
        Entry(folder).load_result()
    message = str(info.value)
    assert f"{planted} is owned by uid {OTHER}" in message and f"export {trust.ENV}={OTHER}" in message, message
    error = Entry(folder)
    (folder / "error.pkl").write_bytes(pickle.dumps(Marker(marker)))
    _as_other(folder / "error.pkl")
    assert isinstance(error.load_error(), CacheError)
    assert not marker.exists()

    # a pickle of one's own is refused too in a folder that the other user owns (they could swap it)
    own = tmp / "cache" / "m,0" / "x=2-0123456789abcdef"
    Entry(own).write_result(2)
    _as_other(own)
    with pytest.raises(CacheError, match=f"folder {own} is owned by uid {OTHER}"):
        Entry(own).load_result()
    os.chown(own, 0, -1)
    with pytest.raises(CacheError, match=f"folder {own.parent} is owned by uid {OTHER}"):
        Entry(own).load_result()

    # the documented opt-in: that owner's pickles load (here the planted one: the check was what stopped it)
    monkeypatch.setenv(trust.ENV, f"nosuchuser, {OTHER}")
    assert Entry(own).load_result() == 2
    Entry(folder).load_result()
    assert marker.exists()
    monkeypatch.setenv(trust.ENV, "*")  # everyone
    assert Entry(own).load_result() == 2


def test_a_symlink_is_checked_where_it_leads(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # world-writable, not sticky: anyone creates folders there
    shared.mkdir()
    os.chmod(shared, 0o777)
    marker = tmp_path / "pwned"
    theirs = shared / "m,0" / "x=1-0123456789abcdef"
    planted = _plant(theirs, marker)
    _as_other(theirs.parent, theirs, planted)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "m,0").symlink_to(shared / "m,0")  # e.g. a method folder linked to a shared disk
    with pytest.raises(CacheError, match=f"{planted.name} is owned by uid {OTHER}"):
        Entry(cache / "m,0" / theirs.name).load_result()
    # one's own file in their folder, reached through the link
    os.chown(planted, 0, -1)
    planted.write_bytes(pickle.dumps(Marker(marker)))
    with pytest.raises(CacheError, match=f"folder {cache / 'm,0' / theirs.name} is owned by uid {OTHER}"):
        Entry(cache / "m,0" / theirs.name).load_result()
    # a link to the folder from one's own cache folder: the target's folders count
    (cache / "n,0").mkdir()
    (cache / "n,0" / "x=1").symlink_to(theirs)
    with pytest.raises(CacheError, match=f"folder {theirs} is owned by uid {OTHER}"):
        Entry(cache / "n,0" / "x=1").load_result()
    # the result file itself a link to their file, in a folder of one's own
    mine = cache / "n,0" / "x=2"
    mine.mkdir()
    evil = shared / "evil.pkl"
    evil.write_bytes(pickle.dumps(Marker(marker)))
    _as_other(evil)
    (mine / "result.pkl").symlink_to(evil)
    with pytest.raises(CacheError, match=f"{mine / 'result.pkl'} is owned by uid {OTHER}"):
        Entry(mine).load_result()
    assert not marker.exists()
    # and a link whose target is all one's own loads
    (cache / "n,0" / "x=3").symlink_to(cache / "n,0" / "x=4")
    Entry(cache / "n,0" / "x=4").write_result(4)
    assert Entry(cache / "n,0" / "x=3").load_result() == 4


def test_a_file_writable_by_everyone_is_refused(tmp_path: Path) -> None:
    entry = Entry(tmp_path / "m,0" / "x=1")
    entry.write_result(1)
    os.chmod(entry.path("result.pkl"), 0o666)
    with pytest.raises(CacheError, match=r"writable by everyone .*chmod o-w"):
        entry.load_result()
    os.chmod(entry.path("result.pkl"), 0o644)
    assert entry.load_result() == 1


def test_the_common_path_is_cheap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One's own result in one's own folders: two fstats (a regular file, then its owner and
    mode) and two lstats once the method folder is known."""
    entries = [Entry(tmp_path / "cache" / "m,0" / f"x={i}") for i in range(3)]
    for i, entry in enumerate(entries):
        entry.write_result(i)
    assert entries[0].load_result() == 0  # checks the folders above once
    calls: list[str] = []
    for name in ("stat", "lstat", "fstat"):
        real = getattr(os, name)

        def counted(*args: tp.Any, _real: tp.Any = real, _name: str = name, **kwargs: tp.Any) -> tp.Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, counted)
    assert entries[1].load_result() == 1
    assert sorted(calls) == ["fstat", "fstat", "lstat", "lstat"], calls
    calls.clear()
    assert entries[1].load_result() == 1  # a folder already checked: one lstat fewer
    assert sorted(calls) == ["fstat", "fstat", "lstat"], calls
