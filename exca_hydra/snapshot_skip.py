"""What a code snapshot leaves out (the cache, Hydra's outputs, git-ignored files) and saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HYDRA_OUTPUTS = ("multirun", "outputs")  # Hydra's default output folders, at a copied folder's top
HYDRA_MARKERS = (".hydra", "multirun.yaml", ".exca")  # a job's or a sweep's output folder


class LeftOut:
    """The paths a snapshot skips, and why; ``record`` keeps what was actually met."""

    def __init__(self, skip: list[Path]) -> None:
        self.skip: dict[Path, str] = {}
        for path in skip:  # both spellings: a path under a symlinked folder is not resolved
            for form in (Path(os.path.abspath(path)), Path(path).resolve()):
                self.skip.setdefault(form, "cache or sweep folder")
        self.met: list[tuple[Path, str]] = []
        self.sources: list[Path] = []

    def scan(self, source: Path) -> None:
        self.sources.append(source)
        for name in HYDRA_OUTPUTS:
            self.skip.setdefault(source / name, "Hydra outputs")
        for path in git_ignored(source):
            self.skip.setdefault(path, ".gitignore")

    def reason(self, path: Path) -> str | None:
        if path in self.skip:
            return self.skip[path]
        if path.is_dir() and not path.is_symlink() and any((path / m).exists() for m in HYDRA_MARKERS):
            return "Hydra outputs"
        return None

    def record(self, path: Path, reason: str) -> None:
        self.met.append((path, reason))

    def say(self, target: Path) -> None:
        if not self.met:
            return
        shown = []
        for path, reason in self.met[:8]:
            base = next((s for s in self.sources if path.is_relative_to(s)), None)
            shown.append(f"{path.relative_to(base) if base else path} ({reason})")
        more = f" and {len(self.met) - 8} more" if len(self.met) > 8 else ""
        print(f"exca-hydra: the code snapshot {target} leaves out {', '.join(shown)}{more}", file=sys.stderr)


def git_ignored(source: Path) -> list[Path]:
    """What git ignores under ``source`` (none outside a git work tree or without git)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(source), "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    if proc.returncode != 0:
        return []
    return [Path(os.path.abspath(source / name.rstrip("/"))) for name in proc.stdout.split("\0") if name]


def copy_link(link: Path, source: Path, dest: Path) -> None:
    """Copy a symlink as a link: a relative one that points outside ``source`` is made absolute
    (it would point elsewhere from the snapshot)."""
    target = os.readlink(link)
    if not os.path.isabs(target):
        resolved = Path(os.path.abspath(link.parent / target))
        if not resolved.is_relative_to(source):
            target = str(resolved)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.is_file():  # copied twice (two sources): the latest wins, as copytree's files
        dest.unlink()
    os.symlink(target, dest)
