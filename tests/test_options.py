"""One set of submitit fields with one set of defaults: the plugin's config nodes, the launcher's
parameters and TaskInfra's ``slurm_*`` fields all say the same."""

from __future__ import annotations

import typing as tp

import pydantic

from exca_hydra import TaskInfra
from exca_hydra.bridge.launcher import LauncherParams, LocalLauncherParams
from exca_hydra.bridge.sweeper import SweeperParams
from exca_hydra.execution.options import Resources, SlurmOptions, submitit_parameters
from hydra_plugins.exca_hydra_plugin import config as plugin_config

HYDRA_ONLY = {"_target_"}


def _defaults(model: type) -> dict[str, tp.Any]:
    defaults = {name: field.get_default(call_default_factory=True) for name, field in model.model_fields.items()}
    return {name: v.model_dump(mode="json") if isinstance(v, pydantic.BaseModel) else v for name, v in defaults.items()}


def test_plugin_nodes_list_the_parameters_keys_and_defaults() -> None:
    for node, model in [
        (plugin_config.EXCA_SLURM, LauncherParams),
        (plugin_config.EXCA_LOCAL, LocalLauncherParams),
        (plugin_config.EXCA_SWEEPER, SweeperParams),
    ]:
        keys = set(node) - HYDRA_ONLY
        assert keys == set(model.model_fields), model.__name__
        expected = _defaults(model)
        for key in keys:
            if isinstance(node[key], str) and node[key].startswith("${"):
                continue  # an interpolation Hydra resolves (e.g. the job's name)
            assert node[key] == expected[key], (model.__name__, key)


def test_taskinfra_has_every_slurm_option_prefixed_with_the_same_default() -> None:
    infra_fields = TaskInfra.model_fields
    for name, field in SlurmOptions.model_fields.items():
        mine = infra_fields[f"slurm_{name}"]
        assert mine.annotation == field.annotation, name
        assert mine.get_default(call_default_factory=True) == field.get_default(call_default_factory=True), name
    for name, field in Resources.model_fields.items():
        assert infra_fields[name].get_default() == field.get_default(), name
    assert TaskInfra(slurm_partition="p", slurm_max_num_timeout=2).slurm_options() == SlurmOptions(partition="p", max_num_timeout=2)


def test_submitit_parameters_names_and_unset_values() -> None:
    params = submitit_parameters(Resources(timeout_min=5), SlurmOptions(partition="p", max_num_timeout=3), "slurm")
    assert params["timeout_min"] == 5 and params["slurm_partition"] == "p"
    assert "cpus_per_task" not in params and "slurm_qos" not in params  # unset: submitit's default
    assert "slurm_max_num_timeout" not in params and "slurm_python" not in params  # executor arguments
    local = submitit_parameters(Resources(), SlurmOptions(partition="p"), "local")
    assert not any(key.startswith("slurm_") for key in local)
