"""The options every backend understands: the cache mode, the cluster, and the submitit resources
as pydantic models of their one declaration (``option_fields``)."""

from __future__ import annotations

import copy
import typing as tp

import pydantic

from .option_fields import PREFIX, Mode, ResourceFields, SlurmFields, names

__all__ = ["Mode", "Cluster", "Resources", "SlurmOptions", "slurm_options", "submitit_parameters"]
Cluster = tp.Literal[None, "auto", "local", "slurm", "debug"]


class Resources(pydantic.BaseModel, ResourceFields):
    """What a job asks for, whatever the cluster (submitit's generic parameters)."""

    model_config = pydantic.ConfigDict(extra="forbid")


class SlurmOptions(pydantic.BaseModel, SlurmFields):
    """Slurm's own options, named as submitit's ``update_parameters`` (and exca, TaskInfra)."""

    model_config = pydantic.ConfigDict(extra="forbid")


RESOURCE_FIELDS = names(ResourceFields)
SLURM_FIELDS = names(SlurmFields)
# not update_parameters' (the executor's, exca-hydra's own)
EXECUTOR_ARGUMENTS = (f"{PREFIX}max_num_timeout", f"{PREFIX}python", f"{PREFIX}jobs_per_task")


def slurm_options(source: tp.Any, strip: str = "") -> SlurmOptions:
    """The Slurm options of an object holding them (an infra; launcher params: ``strip=PREFIX``).
    None where the declaration has a value (the launcher's array_parallelism) means its default."""
    values = {name: getattr(source, name.removeprefix(strip)) for name in SLURM_FIELDS}
    return SlurmOptions(**{n: v for n, v in values.items() if v is not None or getattr(SlurmFields, n) is None})


def model_of(name: str, *models: type[pydantic.BaseModel], strip: str = "") -> type[pydantic.BaseModel]:
    """One model with the fields of ``models`` (names without ``strip``: hydra-submitit-launcher's
    ``partition`` for ``slurm_partition``): same types, defaults and bounds. Plain pydantic fields,
    so a subclass may redeclare one (the declaration's class attributes would warn)."""
    fields = {n.removeprefix(strip): (f.annotation, copy.copy(f)) for m in models for n, f in m.model_fields.items()}
    config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(name, __config__=config, **fields)  # type: ignore[call-overload,no-any-return]


if tp.TYPE_CHECKING:  # the launchers read their Slurm options through slurm_options(), typed

    class HslResources(Resources): ...

    class HslSlurm(Resources): ...

else:  # the resources and Slurm options named as hydra-submitit-launcher does (no slurm_ prefix)
    HslResources = model_of("HslResources", Resources)
    HslSlurm = model_of("HslSlurm", Resources, SlurmOptions, strip=PREFIX)


def submitit_parameters(resources: Resources, slurm: SlurmOptions, cluster: str) -> dict[str, tp.Any]:
    """``executor.update_parameters`` arguments: unset values are left to submitit."""
    out = {name: getattr(resources, name) for name in RESOURCE_FIELDS if getattr(resources, name) is not None}
    if cluster == "slurm":
        for name in SLURM_FIELDS:
            value = getattr(slurm, name)
            if name not in EXECUTOR_ARGUMENTS and value not in (None, {}):
                out[name] = value
    return out
