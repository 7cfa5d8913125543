"""exca-hydra: validated, cached experiment sweeps with pydantic, Hydra and Slurm."""

import typing as tp

__version__ = "0.1.0"

# Lazy exports: the Hydra plugin imports submodules of this package on every app start, so
# importing the package itself must not pull pydantic, hydra or submitit.
_EXPORTS = {
    "TaskInfra": "infra",
    "MapInfra": "map.infra",
    "Mode": "infra",
    "WorkDir": "workdir",
    "Status": "cache.store",
    "compute_uid": "cache.uid",
    "uid_config": "cache.uid",
    "uid_string": "cache.uid",
    "main": "bridge.start.app",
    "to_model": "bridge.launch.convert",
    "results": "table",
}
__all__ = list(_EXPORTS)

if tp.TYPE_CHECKING:
    from .bridge.start.app import main
    from .bridge.launch.convert import to_model
    from .cache.store import Status
    from .cache.uid import compute_uid, uid_config, uid_string
    from .infra import Mode, TaskInfra
    from .map.infra import MapInfra
    from .table import results
    from .workdir import WorkDir


def __getattr__(name: str) -> tp.Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'exca_hydra' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
