"""Launcher and sweeper configs, registered in Hydra's ConfigStore (names as in
hydra-submitit-launcher where the meaning is the same).

Every key and default is the one declaration's (exca_hydra.execution.option_fields: plain Python,
no pydantic here), of which the parameter models validated at launch are made too
(exca_hydra.bridge.launch.params, .sweeper). Plain dicts rather than dataclasses: Hydra imports
this module on every app start, and building and converting dataclasses costs ~3 ms there; struct
mode still rejects unknown keys at composition.
"""

from hydra.core.config_store import ConfigStore

from exca_hydra.execution.option_fields import PREFIX, LaunchFields, ResourceFields, SlurmFields, SlurmLaunchFields
from exca_hydra.execution.option_fields import SweeperFields, defaults

_PLUGINS = "hydra_plugins.exca_hydra_plugin"
_OWN = defaults(LaunchFields)  # folder, array_parallelism, workdir, submitit_folder, name, fail_fast...

EXCA_LOCAL = {"_target_": f"{_PLUGINS}.launchers.ExcaLocalLauncher", **_OWN, **defaults(ResourceFields)}

EXCA_SLURM = {
    "_target_": f"{_PLUGINS}.launchers.ExcaSlurmLauncher",
    **_OWN,
    **defaults(SlurmLaunchFields),  # max_array_size, wait
    **defaults(ResourceFields),  # timeout_min, nodes, cpus_per_task, gpus_per_node, mem_gb...
    # partition, qos, ..., jobs_per_task (hydra-submitit-launcher's names: no slurm_ prefix)
    **{k: v for k, v in defaults(SlurmFields, strip=PREFIX).items() if k not in _OWN},
}

EXCA_SWEEPER = {"_target_": f"{_PLUGINS}.sweeper.ExcaSweeper", **defaults(SweeperFields)}

_store = ConfigStore.instance().store
_store(group="hydra/launcher", name="exca_local", node=EXCA_LOCAL, provider="exca_hydra")
_store(group="hydra/launcher", name="exca_slurm", node=EXCA_SLURM, provider="exca_hydra")
_store(group="hydra/sweeper", name="exca", node=EXCA_SWEEPER, provider="exca_hydra")
