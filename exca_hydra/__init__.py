"""exca-hydra: validated, cached experiment sweeps with pydantic, Hydra and Slurm."""

from .infra import Mode, TaskInfra
from .store import Status
from .uid import compute_uid, uid_config, uid_string
from .workdir import WorkDir

__version__ = "0.1.0"
__all__ = ["TaskInfra", "WorkDir", "Mode", "Status", "compute_uid", "uid_config", "uid_string", "main"]


def __getattr__(name: str):  # the Hydra bridge imports hydra: only load it when asked
    if name == "main":
        from .app import main

        return main
    raise AttributeError(name)
