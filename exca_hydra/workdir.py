"""A snapshot of the code for submitted jobs, so later edits never reach a running job."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import sys
import time
import typing as tp
import uuid
from pathlib import Path

import pydantic

from .execution.option_fields import SNAPSHOT_EXCLUDES
from .snapshot_skip import LeftOut, copy_link

DEFAULT_EXCLUDES = SNAPSHOT_EXCLUDES


class WorkDir(pydantic.BaseModel):
    """Copy ``copied`` paths into a fresh folder and submit from there.  Left out by default: the
    cache and output folders given as ``skip``, Hydra's output folders, what git ignores; symlinks
    are copied as links (a symlinked data folder is not copied in full)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    copied: list[Path] = []
    includes: list[str] = []  # glob patterns of files to copy (all when empty)
    excludes: list[str] = list(DEFAULT_EXCLUDES)

    def _ignore(self, leave: LeftOut, links: list[Path]) -> tp.Callable[[str, list[str]], set[str]]:
        def ignore(folder: str, names: list[str]) -> set[str]:
            out = set()
            for name in names:
                path = Path(os.path.abspath(os.path.join(folder, name)))  # the link, not its target
                excluded = any(fnmatch.fnmatch(name, p) for p in self.excludes)
                reason = "excluded" if excluded else leave.reason(path)
                if reason is not None:
                    out.add(name)
                    if reason != "excluded":
                        leave.record(path, reason)
                elif path.is_symlink():
                    out.add(name)
                    links.append(path)
                elif self.includes and path.is_file():
                    if not any(fnmatch.fnmatch(name, p) for p in self.includes):
                        out.add(name)
            return out

        return ignore

    def copy(self, root: Path, skip: tp.Iterable[Path] = ()) -> Path:  # type: ignore[override]  # pydantic's deprecated copy()
        """Copy the paths into a new folder under ``root`` and return it (``skip``: folders
        never copied, besides ``root``, e.g. the cache).  Says on stderr what was left out."""
        from .cache.trust import check_folder_trusted
        from .execution.private import make_private, private_umask

        # the jobs import this code: nobody else may have made or be able to change where it is
        check_folder_trusted(root)
        make_private(root)
        with private_umask():
            return self._copy(root, skip)

    def _copy(self, root: Path, skip: tp.Iterable[Path]) -> Path:
        target = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        leave = LeftOut([root, *skip])
        for source in self.copied:
            source = Path(source).resolve()
            if not source.exists():
                raise FileNotFoundError(f"WorkDir: {source} does not exist")
            if source.is_dir():
                dest = target if source == Path.cwd().resolve() else target / source.name
                leave.scan(source)
                links: list[Path] = []
                shutil.copytree(source, dest, ignore=self._ignore(leave, links), dirs_exist_ok=True)
                for link in links:
                    copy_link(link, source, dest / link.relative_to(source))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
        target.mkdir(parents=True, exist_ok=True)
        leave.say(target)
        return target

    def relocated(self, path: str, target: Path, cwd: Path | None = None) -> str:
        """Where ``path`` (under a copied folder) is in the copy ``target`` made from the folder
        ``cwd`` (default: this process's current one); ``path`` itself if it was not copied."""
        base = (cwd or Path.cwd()).resolve()
        resolved = Path(path).resolve()
        for source in self.copied:
            source = (base / source).resolve()
            if source.is_dir() and (resolved == source or source in resolved.parents):
                dest = target if source == base else target / source.name
                return str(dest / resolved.relative_to(source))
        return path

    @contextlib.contextmanager
    def activate(self, root: Path, skip: tp.Iterable[Path] = ()) -> tp.Iterator[Path]:
        """Submit from a fresh copy: jobs start in it and import the copied code first."""
        target = self.copy(root, skip)
        with inside(target):
            yield target


@contextlib.contextmanager
def submitting_from(workdir: WorkDir | None, root: Path | None, backend: tp.Any, skip: tp.Iterable[Path] = ()) -> tp.Iterator[None]:
    """Submit from a code snapshot (with a workdir and a root for it): the jobs start in it and
    import the launching script's modules from its copy, not from the original folder, where
    later edits would reach queued jobs."""
    if workdir is None or root is None:
        yield
        return
    from .execution.worker import script_dir, script_dir_as

    origin = Path.cwd()
    with workdir.activate(root, skip) as target:
        app = script_dir()
        copy = workdir.relocated(app, target, origin) if app else app
        inner = getattr(backend, "backend", backend)  # (a pull backend wraps submitit's)
        if getattr(inner, "import_path", None):
            inner.import_path = copy
        with script_dir_as(copy):
            yield


@contextlib.contextmanager
def inside(target: Path) -> tp.Iterator[Path]:
    """Work in ``target`` and import from it first, for the time of the block."""
    previous = os.getcwd()
    os.chdir(target)
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        os.chdir(previous)
        if sys.path and sys.path[0] == str(target):
            sys.path.pop(0)
