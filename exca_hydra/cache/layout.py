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


MAIN_NAME = "__exca_main_name__"  # on a class defined in a script: the script's import name


def fix_main_name(cls: type) -> None:
    """Record, where a class is defined, the import name of its script: a class of ``__main__``
    travels by value to a job process, whose ``__main__`` is the launcher's (submitit, joblib...),
    and its entries must not follow that."""
    if cls.__module__ == "__main__" and MAIN_NAME not in cls.__dict__:
        setattr(cls, MAIN_NAME, import_name("__main__"))


def class_module(cls: type) -> str:
    if cls.__module__ == "__main__":
        fix_main_name(cls)  # a subclass first seen here: named now (the defining process, mostly)
        return str(cls.__dict__[MAIN_NAME])
    return cls.__module__


def method_name(cls: type, method: str) -> str:
    """``module.Class.method`` of a decorated method."""
    return f"{class_module(cls)}.{cls.__qualname__}.{method}"


def method_folder(root: Path, name: str, version: str) -> Path:
    """The folder holding every uid of one computation at one version."""
    return Path(root) / f"{name},{version}"
