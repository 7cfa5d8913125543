"""The base of the exca launcher plugins: Hydra's ``Launcher`` with the typed hand-off the exca
sweeper uses (``launch_plan``). Cheap to import: Hydra imports the plugin modules on every app
start, so the library is imported only when a launch begins."""

from __future__ import annotations

import typing as tp

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ExcaLauncher(Launcher):
    cluster = ""

    def __init__(self, **params: tp.Any) -> None:
        self.params = params
        self.config: tp.Any = None
        self.hydra_context: tp.Any = None
        self.task_function: tp.Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: tp.Sequence[tp.Sequence[str]], initial_job_idx: int) -> tp.Sequence[JobReturn]:
        # deferred: pydantic and submitit cost ~150 ms and Hydra imports the plugins on every start
        from .launcher import launch

        return launch(self, job_overrides, initial_job_idx)

    def launch_plan(self, jobs: tp.Sequence[tp.Any]) -> tp.Sequence[JobReturn]:
        """Jobs the exca sweeper composed, validated and planned (``bridge.jobs.HydraJob``)."""
        from .launcher import launch_plan

        return launch_plan(self, jobs)
