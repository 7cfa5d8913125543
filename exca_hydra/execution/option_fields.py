"""The submitit/Slurm options, declared once: names, types, defaults and bounds.

Everything else is built from these two classes: ``options.Resources``/``SlurmOptions`` and
TaskInfra's and MapInfra's fields inherit them (names as in exca and submitit's
``update_parameters``: ``slurm_partition``...), the launcher's parameters take the Slurm ones
without the prefix (hydra-submitit-launcher's ``hydra.launcher.partition``...), and the Hydra
plugin's config nodes read the defaults (``defaults()``).

Plain classes, not pydantic models: Hydra imports the plugin on every app start, and this module
costs only ``typing``. The annotations stay strings until pydantic reads them; the
``dataclass_transform`` marker lets type checkers see the fields of every model built on them.
"""

from __future__ import annotations

import sys
import typing as tp

PREFIX = "slurm_"


class Ge:
    """A lower bound (pydantic's ``ge``), without importing annotated_types here."""

    def __init__(self, ge: float) -> None:
        self.ge = ge

    def __get_pydantic_core_schema__(self, source: tp.Any, handler: tp.Any) -> tp.Any:
        import annotated_types

        return handler(tp.Annotated[source, annotated_types.Ge(self.ge)])


_C = tp.TypeVar("_C")
_F = tp.TypeVar("_F")


if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # only type checkers read the marker (they run on 3.11)

    def dataclass_transform(**_: tp.Any) -> tp.Callable[[_F], _F]:
        return lambda function: function


@dataclass_transform(kw_only_default=True)
def declared(cls: type[_C]) -> type[_C]:
    """Marks a field declaration for type checkers (fields of the models that inherit it)."""
    return cls


@declared
class ResourceFields:
    """What a job asks for, whatever the cluster (submitit's generic parameters)."""

    timeout_min: tp.Annotated[int | None, Ge(1)] = None  # None: the partition's default time limit
    nodes: tp.Annotated[int | None, Ge(1)] = 1
    tasks_per_node: tp.Annotated[int | None, Ge(1)] = 1
    cpus_per_task: tp.Annotated[int | None, Ge(1)] = None
    gpus_per_node: tp.Annotated[int | None, Ge(0)] = None
    mem_gb: tp.Annotated[float | None, Ge(0)] = None  # 0: all of the node's memory (Slurm's --mem=0)


@declared
class SlurmFields:
    """Slurm's own options, with submitit's (and exca's) ``slurm_`` prefix; hydra-submitit-launcher
    names them without it."""

    slurm_partition: str | None = None
    slurm_qos: str | None = None
    slurm_comment: str | None = None
    slurm_constraint: str | None = None
    slurm_exclude: str | None = None
    slurm_gres: str | None = None
    slurm_cpus_per_gpu: int | None = None
    slurm_gpus_per_task: int | None = None
    slurm_mem_per_gpu: str | None = None
    slurm_mem_per_cpu: str | None = None
    slurm_account: str | None = None
    slurm_signal_delay_s: tp.Annotated[int, Ge(0)] = 120  # Slurm's warning before the time limit (the checkpoint hook's time)
    slurm_max_num_timeout: tp.Annotated[int, Ge(0)] = 3  # requeues after a timeout, for configs with a checkpoint() hook (submitit's default)
    slurm_additional_parameters: dict[str, tp.Any] = {}  # pydantic copies mutable defaults per instance
    slurm_setup: list[str] | None = None
    slurm_srun_args: list[str] | None = None  # extra arguments of the job step's srun
    slurm_python: str | None = None  # the command that runs Python in the job (e.g. "apptainer exec img python")
    slurm_use_srun: bool = True  # Slurm's timeout/preemption signals reach job steps only
    slurm_array_parallelism: tp.Annotated[int, Ge(1)] = 256  # tasks of one array running at once
    # None: min(N, array_parallelism) array tasks that pull jobs until none is left (one Python
    # start per worker); k: k jobs per array task, fixed at submission (1: one task per job)
    slurm_jobs_per_task: tp.Annotated[int | None, Ge(1)] = None


def names(fields: type) -> tuple[str, ...]:
    """The declared names, in order (annotations of the class itself)."""
    return tuple(fields.__dict__["__annotations__"])


def defaults(fields: type, strip: str = "") -> dict[str, tp.Any]:
    """Name -> default (a fresh copy of mutable ones), names without ``strip`` if given."""
    out = {}
    for name in names(fields):
        value = getattr(fields, name)
        out[name.removeprefix(strip)] = type(value)(value) if isinstance(value, (dict, list)) else value
    return out
