"""Where a computation's entries live: ``<root>/<module.qualname>,<version>/<uid>``; one namer for
the Python API and the Hydra launchers, so both find the same entries."""

from __future__ import annotations

import os
import sys
import typing as tp
from pathlib import Path


def import_name(module: str, code_file: str | None = None) -> str:
    """A module's import name; ``__main__`` becomes the script's name (a job process's
    ``__main__`` is whatever started the job, so names are fixed where the code is defined).
    ``code_file``: the file the code is defined in; a script run by a tool (``python -m cProfile
    app.py``, ``-m trace``) is named after it, not after the tool that is ``__main__`` then."""
    if module == "__main__":
        main = sys.modules["__main__"]
        main_file = getattr(main, "__file__", None)
        if code_file and code_file.endswith(".py") and (
            not main_file or os.path.realpath(main_file) != os.path.realpath(code_file)
        ):
            return Path(code_file).stem
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            return str(spec.name)
        file = getattr(main, "__file__", None)
        return Path(file).stem if file else module
    return module


MAIN_NAME = "__exca_main_name__"  # on a class defined in a script: the script's import name
MAIN_FILE = "__exca_main_file__"  # and the script's real path


def defining_file(cls: type) -> str | None:
    """The file a class's own methods are written in (None: it has none)."""
    for value in vars(cls).values():
        function = getattr(value, "__func__", value)  # a classmethod or staticmethod
        function = getattr(function, "__wrapped__", function)  # an infra's method wrapper
        code = getattr(function, "__code__", None)
        if code is not None and getattr(function, "__module__", None) == cls.__module__:
            return str(code.co_filename)
    return None


def fix_main_name(cls: type) -> None:
    """Record, where a class is defined, the import name of its script: a class of ``__main__``
    travels by value to a job process, whose ``__main__`` is the launcher's (submitit, joblib...),
    and its entries must not follow that."""
    if cls.__module__ == "__main__" and MAIN_NAME not in cls.__dict__:
        file = defining_file(cls)
        setattr(cls, MAIN_NAME, import_name("__main__", file))
        if file and file.endswith(".py"):  # two projects' app.py:Task share a name, not a file
            setattr(cls, MAIN_FILE, os.path.realpath(file))


def class_program(cls: type) -> str | None:
    """The script a class of ``__main__`` is written in (its entries record it, and an entry of
    another program is never served); None for a class of a module (named by its import path)."""
    if cls.__module__ != "__main__":
        return None
    fix_main_name(cls)
    return cls.__dict__.get(MAIN_FILE)


def function_program(function: tp.Any) -> str | None:
    """The same for a task function written in the script."""
    code = getattr(function, "__code__", None)
    if getattr(function, "__module__", None) != "__main__" or code is None or not code.co_filename.endswith(".py"):
        return None
    return os.path.realpath(code.co_filename)


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


def check_cache_folder(folder: tp.Any) -> tp.Any:
    """A cache folder that exists must be a directory (a file there failed deep in the plan)."""
    if folder is not None and os.path.exists(os.path.expanduser(str(folder))) and not os.path.isdir(os.path.expanduser(str(folder))):
        raise ValueError(f"{folder} is a file, not a folder: the cache folder must be a directory")
    return folder
