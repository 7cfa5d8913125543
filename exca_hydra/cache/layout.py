"""Where a computation's entries live: ``<root>/<module.qualname>,<version>/<uid>``; one namer for
the Python API and the Hydra launchers, so both find the same entries."""

from __future__ import annotations

import sys
from pathlib import Path


def import_name(module: str) -> str:
    """A module's import name; ``__main__`` becomes the script's name (a job process's
    ``__main__`` is whatever started the job, so names are fixed where the code is defined)."""
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            return str(spec.name)
        file = getattr(main, "__file__", None)
        return Path(file).stem if file else module
    return module


def method_name(cls: type, method: str) -> str:
    """``module.Class.method`` of a decorated method."""
    return f"{import_name(cls.__module__)}.{cls.__qualname__}.{method}"


def method_folder(root: Path, name: str, version: str) -> Path:
    """The folder holding every uid of one computation at one version."""
    return Path(root) / f"{name},{version}"
