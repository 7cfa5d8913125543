from typing import Any, List

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ExcaSweeper(Sweeper):
    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Any = None
        self.hydra_context: Any = None
        self.task_function: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        # deferred: pydantic and the library cost ~100 ms and Hydra imports this module on every start
        from exca_hydra.bridge.launch.sweeper import sweep

        from .launchers import BaseExcaLauncher

        # an exca launcher takes the jobs this sweeper composed, validated and planned
        exca = self.launcher if isinstance(self.launcher, BaseExcaLauncher) else None
        return sweep(self, arguments, exca)
