"""The launchers' parameters (``hydra.launcher.*``), validated by pydantic when launching: an
unknown key or a bad value fails before anything runs. Every key, its default and its bounds come
from the one declaration (``execution/option_fields.py``) that the plugin's config nodes are made
of too; here are only the checks that need pydantic."""

from __future__ import annotations

import logging

import pydantic

from ...cache.layout import check_cache_folder
from ...execution.option_fields import PREFIX, LaunchFields, SlurmLaunchFields
from ...execution.options import HslResources, HslSlurm, SlurmOptions, slurm_options
from ...workdir import WorkDir

logger = logging.getLogger("exca_hydra.launcher")

# the declared defaults are the plugin nodes' (a workdir as a dict): validated into their types
_CONFIG = pydantic.ConfigDict(extra="forbid", validate_default=True)


class LauncherParams(LaunchFields, SlurmLaunchFields, HslSlurm):  # (the declarations first: theirs win)
    """Every ``hydra.launcher`` key of ``exca_slurm``, validated: an unknown key fails before
    anything runs."""

    model_config = _CONFIG
    _folder = pydantic.field_validator("folder")(check_cache_folder)

    @pydantic.model_validator(mode="after")
    def _warning_within_the_limit(self) -> "LauncherParams":
        """Slurm's warning (USR2, signal_delay_s before the limit) must come after the start:
        at timeout_min=1 the default 120 s would stop every worker before it takes a job."""
        signal_delay_s: int = getattr(self, "signal_delay_s")
        if self.timeout_min is not None and signal_delay_s >= self.timeout_min * 60 / 2:
            delay = max(1, int(self.timeout_min * 60 / 4))
            logger.warning("hydra.launcher.signal_delay_s=%d is not shorter than half of timeout_min=%g min: "
                           "using signal_delay_s=%d (a quarter of the limit)", signal_delay_s, self.timeout_min, delay)  # fmt: skip
            setattr(self, "signal_delay_s", delay)
        return self

    @pydantic.model_validator(mode="after")
    def _fail_fast_waits(self) -> "LauncherParams":
        if self.fail_fast and not self.wait:
            raise ValueError("fail_fast=true stops the sweep at the first failure, which needs the launcher to "
                             "wait for the jobs: it cannot go with wait=false")  # fmt: skip
        return self

    def slurm_options(self) -> SlurmOptions:
        """The Slurm options with submitit's names (``slurm_partition``...)."""
        return slurm_options(self, strip=PREFIX)


class LocalLauncherParams(LaunchFields, HslResources):
    """``exca_local``'s keys: those of hydra-submitit-launcher's ``submitit_local`` too, so
    switching is one word. Locally, ``timeout_min`` stops the job (minutes, a fraction allowed),
    ``cpus_per_task`` divides the default parallelism, ``submitit_folder`` holds the jobs' logs; the
    others set nothing."""

    model_config = _CONFIG
    _folder = pydantic.field_validator("folder")(check_cache_folder)
    timeout_min: float | None = pydantic.Field(None, gt=0)  # type: ignore[assignment]  # the declared key, a fraction of a minute allowed here

    @pydantic.field_validator("nodes", "tasks_per_node")
    @classmethod
    def _one_process(cls, value: int | None) -> int | None:
        if (value or 1) > 1:
            raise ValueError("exca_local runs each job as one process on this machine: more needs exca_slurm")
        return value


for _model in (LauncherParams, LocalLauncherParams):
    _model.model_rebuild(_types_namespace={"WorkDir": WorkDir})
