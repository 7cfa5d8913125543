"""What the task function of an ``exca_hydra.main`` app says about itself, typed: the launchers,
the sweeper and the job side read it instead of guessing from attributes."""

from __future__ import annotations

import typing as tp
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    function: tp.Callable[[tp.Any], tp.Any]  # what computes: the user's function or the model's method
    model: type  # the pydantic model the config is validated into
    module: str  # the import name of the function's module, fixed when decorated
    uncached: bool = False  # the app calls the model's cached methods: it caches nothing itself

    @property
    def method(self) -> tp.Callable[[tp.Any], tp.Any] | None:
        """The undecorated method, when ``function`` is an ``@infra.apply`` method (its infra caches)."""
        return getattr(self.function, "__exca_method__", None)


def task_info(task_function: tp.Any) -> TaskInfo | None:
    """The app's task info; None for a plain ``@hydra.main`` (DictConfig) task."""
    info = getattr(task_function, "exca_info", None)
    return info if isinstance(info, TaskInfo) else None
