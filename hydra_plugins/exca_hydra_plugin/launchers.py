from typing import Any, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class BaseExcaLauncher(Launcher):
    cluster = ""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Any = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        # deferred: pydantic and submitit cost ~150 ms and Hydra imports this module on every start
        from exca_hydra.bridge.launch.launcher import launch

        return launch(self, job_overrides, initial_job_idx)


class ExcaLocalLauncher(BaseExcaLauncher):
    cluster = "local"


class ExcaSlurmLauncher(BaseExcaLauncher):
    cluster = "slurm"
