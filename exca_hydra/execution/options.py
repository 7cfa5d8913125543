"""The options every backend understands, declared once: the cache mode, the cluster, and the
submitit resources with their defaults (names as in submitit and hydra-submitit-launcher)."""

from __future__ import annotations

import typing as tp

import pydantic

Mode = tp.Literal["cached", "retry", "force", "read-only"]
Cluster = tp.Literal[None, "auto", "local", "slurm", "debug"]


class Resources(pydantic.BaseModel):
    """What a job asks for, whatever the cluster (submitit's generic parameters)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    timeout_min: int | None = pydantic.Field(None, ge=1)  # None: the partition's default time limit
    nodes: int | None = pydantic.Field(1, ge=1)
    tasks_per_node: int | None = pydantic.Field(1, ge=1)
    cpus_per_task: int | None = pydantic.Field(None, ge=1)
    gpus_per_node: int | None = pydantic.Field(None, ge=0)
    mem_gb: float | None = pydantic.Field(None, ge=0)  # 0: all of the node's memory (Slurm's --mem=0)


class SlurmOptions(pydantic.BaseModel):
    """Slurm's own options, named as in hydra-submitit-launcher (``TaskInfra`` prefixes them
    with ``slurm_``, as exca does)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    partition: str | None = None
    qos: str | None = None
    comment: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    gres: str | None = None
    cpus_per_gpu: int | None = None
    gpus_per_task: int | None = None
    mem_per_gpu: str | None = None
    mem_per_cpu: str | None = None
    account: str | None = None
    signal_delay_s: int = pydantic.Field(120, ge=0)  # Slurm's warning before the time limit (the checkpoint hook's time)
    max_num_timeout: int = pydantic.Field(3, ge=0)  # requeues after a timeout, for configs with a checkpoint() hook (submitit's default)
    additional_parameters: dict[str, tp.Any] = {}
    setup: list[str] | None = None
    srun_args: list[str] | None = None  # extra arguments of the job step's srun
    python: str | None = None  # the command that runs Python in the job (e.g. "apptainer exec img python")
    use_srun: bool = True  # Slurm's timeout/preemption signals reach job steps only
    array_parallelism: int = pydantic.Field(256, ge=1)  # tasks of one array running at once
    # None: min(N, array_parallelism) array tasks that pull jobs until none is left (one Python
    # start per worker); k: k jobs per array task, fixed at submission (1: one task per job)
    jobs_per_task: int | None = pydantic.Field(None, ge=1)


RESOURCE_FIELDS = tuple(Resources.model_fields)
EXECUTOR_ARGUMENTS = ("max_num_timeout", "python", "jobs_per_task")  # not update_parameters' (executor, exca)
SLURM_FIELDS = tuple(SlurmOptions.model_fields)


def submitit_parameters(resources: Resources, slurm: SlurmOptions, cluster: str) -> dict[str, tp.Any]:
    """``executor.update_parameters`` arguments: unset values are left to submitit."""
    out = {name: getattr(resources, name) for name in RESOURCE_FIELDS if getattr(resources, name) is not None}
    if cluster == "slurm":
        for name in SLURM_FIELDS:
            value = getattr(slurm, name)
            if name not in EXECUTOR_ARGUMENTS and value not in (None, {}):
                out[f"slurm_{name}"] = value
    return out
