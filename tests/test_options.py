"""The submitit/Slurm options are declared once (exca_hydra/execution/option_fields.py): TaskInfra's
and MapInfra's fields, the launchers' parameters and the plugin's config nodes are built from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as tp

import pydantic

from exca_hydra.bridge.launch.params import LauncherParams, LocalLauncherParams
from exca_hydra.bridge.launch.sweeper import SweeperParams
from exca_hydra.execution import option_fields
from exca_hydra.execution.options import Resources, SlurmOptions, submitit_parameters
from hydra_plugins.exca_hydra_plugin import config as plugin_config

# a field added to the declaration, in a fresh process (every model is built at import)
ADD_AN_OPTION = r"""
import json, typing as tp
from exca_hydra.execution import option_fields as f
f.ResourceFields.__annotations__["new_resource"] = "tp.Annotated[int | None, Ge(2)]"
f.ResourceFields.new_resource = 4
f.SlurmFields.__annotations__["slurm_new_option"] = "str | None"
f.SlurmFields.slurm_new_option = "dflt"
import pydantic
from exca_hydra import MapInfra, TaskInfra
from exca_hydra.bridge.launch.params import LauncherParams, LocalLauncherParams
from exca_hydra.execution.options import Resources, submitit_parameters
from hydra_plugins.exca_hydra_plugin import config as node

def refused(model, **kwargs):
    try:
        model(**kwargs)
    except pydantic.ValidationError as error:
        return "greater than or equal to 2" in str(error)
    return False

infra = TaskInfra(slurm_new_option="mine", new_resource=3)
params = LauncherParams(new_option="hsl")
print(json.dumps({
    "task": [TaskInfra().slurm_new_option, TaskInfra().new_resource, infra.slurm_new_option, infra.slurm_options().slurm_new_option],
    "map": [MapInfra().slurm_new_option, MapInfra(new_resource=5).new_resource],
    "launcher": [LauncherParams().new_option, params.slurm_options().slurm_new_option, LocalLauncherParams().new_resource],
    "nodes": [node.EXCA_SLURM["new_option"], node.EXCA_SLURM["new_resource"], node.EXCA_LOCAL["new_resource"], "new_option" in node.EXCA_LOCAL],
    "submitit": submitit_parameters(Resources(new_resource=2), infra.slurm_options(), "slurm"),
    "bounds": [refused(TaskInfra, new_resource=1), refused(MapInfra, new_resource=1), refused(LocalLauncherParams, new_resource=1), refused(LauncherParams, new_resource=1)],
}))
"""


def test_an_option_added_to_the_declaration_reaches_every_place() -> None:
    out = subprocess.run([sys.executable, "-c", ADD_AN_OPTION], capture_output=True, text=True, env=os.environ, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["task"] == ["dflt", 4, "mine", "mine"]  # exca's slurm_ names on TaskInfra
    assert seen["map"] == ["dflt", 5]
    assert seen["launcher"] == ["dflt", "hsl", 4]  # hydra-submitit-launcher's names under hydra.launcher
    assert seen["nodes"] == ["dflt", 4, 4, False]  # the Slurm options only in exca_slurm's node
    assert seen["submitit"]["new_resource"] == 2 and seen["submitit"]["slurm_new_option"] == "mine"
    assert seen["bounds"] == [True, True, True, True]  # the declared bound, everywhere


def test_the_plugin_nodes_hold_the_declared_defaults() -> None:
    for name, default in option_fields.defaults(option_fields.ResourceFields).items():
        assert plugin_config.EXCA_LOCAL[name] == plugin_config.EXCA_SLURM[name] == default, name
    for name, default in option_fields.defaults(option_fields.SlurmFields, strip="slurm_").items():
        if name != "array_parallelism":  # the launchers' own (None: by cluster)
            assert plugin_config.EXCA_SLURM[name] == default, name
    # a mutable default is a copy: a node changed by Hydra does not change the declaration
    assert plugin_config.EXCA_SLURM["additional_parameters"] is not option_fields.SlurmFields.slurm_additional_parameters


OWN_KEYS = r"""
import json
from exca_hydra.execution import option_fields as f
f.LaunchFields.__annotations__["new_key"] = "tp.Annotated[int, Ge(3)]"
f.LaunchFields.new_key = 5
f.SlurmLaunchFields.__annotations__["slurm_only"] = "bool"
f.SlurmLaunchFields.slurm_only = True
f.SweeperFields.__annotations__["new_sweep_key"] = "str | None"
f.SweeperFields.new_sweep_key = "s"
import pydantic
from exca_hydra.bridge.launch.params import LauncherParams, LocalLauncherParams
from exca_hydra.bridge.launch.sweeper import SweeperParams
from hydra_plugins.exca_hydra_plugin import config as node

def refused(model, **kwargs):
    try:
        model(**kwargs)
    except pydantic.ValidationError:
        return True
    return False

print(json.dumps({
    "models": [LauncherParams().new_key, LocalLauncherParams().new_key, LauncherParams().slurm_only, "slurm_only" in LocalLauncherParams.model_fields, SweeperParams().new_sweep_key],
    "nodes": [node.EXCA_SLURM["new_key"], node.EXCA_LOCAL["new_key"], node.EXCA_SLURM["slurm_only"], "slurm_only" in node.EXCA_LOCAL, node.EXCA_SWEEPER["new_sweep_key"]],
    "bounds": [refused(LauncherParams, new_key=2), refused(LocalLauncherParams, new_key=2), refused(SweeperParams, new_sweep_key=1)],
}))
"""


def test_a_launcher_or_sweeper_key_added_to_the_declaration_reaches_its_node_and_its_model() -> None:
    """Issue 20: the launchers' and the sweeper's own keys (folder, workdir, fail_fast, wait...)
    are declared once, as the submitit options are: no copy to keep in step."""
    out = subprocess.run([sys.executable, "-c", OWN_KEYS], capture_output=True, text=True, env=os.environ, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["models"] == [5, 5, True, False, "s"]
    assert seen["nodes"] == [5, 5, True, False, "s"]
    assert seen["bounds"] == [True, True, True]


def test_the_models_validate_the_nodes_defaults() -> None:
    """The nodes hold plain values (a workdir as a dict); the models read them as their types."""
    for node, model in [(plugin_config.EXCA_SLURM, LauncherParams), (plugin_config.EXCA_LOCAL, LocalLauncherParams),
                        (plugin_config.EXCA_SWEEPER, SweeperParams)]:  # fmt: skip
        keys = {k: v for k, v in node.items() if k != "_target_"}
        params = model(**keys)
        assert set(keys) == set(model.model_fields), model.__name__
        assert params.model_dump(mode="json") == model().model_dump(mode="json")
    assert type(LauncherParams().workdir).__name__ == "WorkDir" and LauncherParams().workdir is not LauncherParams().workdir


def test_the_declared_bounds_and_types_hold_everywhere() -> None:
    from exca_hydra import MapInfra, TaskInfra

    for model, kwargs in [(TaskInfra, {"slurm_signal_delay_s": -1}), (MapInfra, {"slurm_array_parallelism": 0}),
                          (LauncherParams, {"jobs_per_task": 0}), (LocalLauncherParams, {"cpus_per_task": 0}),
                          (TaskInfra, {"slurm_partition": 3}), (LauncherParams, {"partition": 3})]:  # fmt: skip
        try:
            model(**kwargs)
        except pydantic.ValidationError:
            continue
        raise AssertionError(f"{model.__name__}({kwargs}) was accepted")
    # each model's own copy of a mutable default
    a, b = TaskInfra(), TaskInfra()
    a.slurm_additional_parameters["x"] = 1
    assert b.slurm_additional_parameters == {} and option_fields.SlurmFields.slurm_additional_parameters == {}


def test_submitit_parameters_names_and_unset_values() -> None:
    from exca_hydra import TaskInfra

    assert TaskInfra(slurm_partition="p", slurm_max_num_timeout=2).slurm_options() == SlurmOptions(
        slurm_partition="p", slurm_max_num_timeout=2
    )
    params = submitit_parameters(Resources(timeout_min=5), SlurmOptions(slurm_partition="p", slurm_max_num_timeout=3), "slurm")
    assert params["timeout_min"] == 5 and params["slurm_partition"] == "p"
    assert "cpus_per_task" not in params and "slurm_qos" not in params  # unset: submitit's default
    assert "slurm_max_num_timeout" not in params and "slurm_python" not in params  # executor arguments
    local = submitit_parameters(Resources(), SlurmOptions(slurm_partition="p"), "local")
    assert not any(key.startswith("slurm_") for key in local)
    # the launcher's None array_parallelism is the declaration's default on Slurm
    assert LauncherParams(partition="q").slurm_options().slurm_array_parallelism == 256
