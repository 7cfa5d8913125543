"""The options, declared once: names, types, defaults and bounds.

The submitit/Slurm options (``ResourceFields``, ``SlurmFields``): ``options.Resources``/
``SlurmOptions`` and TaskInfra's and MapInfra's fields inherit them (names as in exca and
submitit's ``update_parameters``: ``slurm_partition``...), the launchers' parameters take the Slurm
ones without the prefix (hydra-submitit-launcher's ``hydra.launcher.partition``...). The
launchers' and the sweeper's own keys (``LaunchFields``, ``SlurmLaunchFields``, ``SweeperFields``):
their parameter models (bridge/launch/params.py, sweeper.py) inherit them. The Hydra plugin's config
nodes are the defaults of the same classes (``defaults()``).

Plain classes, not pydantic models: Hydra imports the plugin on every app start, and this module
costs only ``typing``. The annotations stay strings until pydantic reads them; the
``dataclass_transform`` marker lets type checkers see the fields of every model built on them.
"""

from __future__ import annotations

import copy
import sys
import typing as tp

if tp.TYPE_CHECKING:  # exca_hydra.workdir.WorkDir, given to pydantic by the models that read it
    WorkDir = tp.Any  # (not imported: workdir imports this module)

PREFIX = "slurm_"
Mode = tp.Literal["cached", "retry", "force", "read-only"]
SNAPSHOT_EXCLUDES = ("__pycache__", "*.pyc", ".git", ".hypothesis", ".pytest_cache", "*.egg-info")


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


@declared
class LaunchFields:
    """Both launchers' own keys (``hydra.launcher.*``), beyond submitit's."""

    folder: str | None = None  # cache root; None: the model's infra.folder, else no cache
    array_parallelism: tp.Annotated[int | None, Ge(1)] = None  # jobs at once; None: the CPU count / cpus_per_task (local), 256 (Slurm)
    # a snapshot of these folders, made at launch, that the jobs start in and import from
    workdir: WorkDir = {"copied": [], "includes": [], "excludes": list(SNAPSHOT_EXCLUDES)}  # type: ignore[assignment]
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"  # the jobs' logs (hydra-submitit-launcher's key)
    name: str | None = "${hydra.job.name}"
    stderr_to_stdout: bool = False
    fail_fast: bool = False  # stop the sweep at the first failed job, the others cancelled (hydra#2824)


@declared
class SlurmLaunchFields:
    """``exca_slurm``'s own keys."""

    max_array_size: tp.Annotated[int | None, Ge(1)] = None  # None: Slurm's MaxArraySize
    wait: bool = True  # False: exit once the jobs are submitted; re-running collects them (hydra#2479)


@declared
class SweeperFields:
    """The ``exca`` sweeper's keys (``hydra.sweeper.*``)."""

    max_batch_size: tp.Annotated[int | None, Ge(1)] = None
    params: dict[str, str] | None = None
    mode: Mode = "cached"  # cached | retry | force | read-only
    dry_run: bool = False
    folder: str | None = None  # cache root, before hydra.launcher.folder and the model's infra.folder
    best: str | None = None  # the summary names the best job: max:result.accuracy, min:result.loss


def names(fields: type) -> tuple[str, ...]:
    """The declared names, in order (annotations of the class itself)."""
    return tuple(fields.__dict__["__annotations__"])


def defaults(fields: type, strip: str = "") -> dict[str, tp.Any]:
    """Name -> default (a fresh copy of mutable ones), names without ``strip`` if given."""
    out = {}
    for name in names(fields):
        value = getattr(fields, name)
        out[name.removeprefix(strip)] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return out
