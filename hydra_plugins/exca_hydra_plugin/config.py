"""Launcher and sweeper configs, registered in Hydra's ConfigStore (names as in
hydra-submitit-launcher where the meaning is the same).

Plain dicts rather than dataclasses: Hydra imports this module on every app start, and building
and converting dataclasses costs ~3 ms there. The submitit/Slurm keys and defaults come from their
one declaration (exca_hydra.execution.option_fields, plain Python: no pydantic here); types are
checked by pydantic when launching (exca_hydra.bridge.launch.params.LauncherParams, which is built on the
same declaration); struct mode still rejects unknown keys at composition.
"""

from hydra.core.config_store import ConfigStore

from exca_hydra.execution.option_fields import PREFIX, ResourceFields, SlurmFields, defaults

_PLUGINS = "hydra_plugins.exca_hydra_plugin"

_COMMON = {
    "folder": None,  # cache root; null: the model's infra.folder, else no cache
    "array_parallelism": None,  # jobs running at once; null: the CPU count / cpus_per_task (local), 256 (Slurm)
    # a snapshot of these folders, made at launch, that the jobs start in and import from
    "workdir": {
        "copied": [],
        "includes": [],
        "excludes": ["__pycache__", "*.pyc", ".git", ".hypothesis", ".pytest_cache", "*.egg-info"],
    },
    # hydra-submitit-launcher's keys (submitit_local accepts these too)
    "submitit_folder": "${hydra.sweep.dir}/.submitit/%j",  # the jobs' logs
    **defaults(ResourceFields),  # timeout_min (null: the partition's limit, none locally), nodes, ...
    "name": "${hydra.job.name}",
    "stderr_to_stdout": False,
    "fail_fast": False,  # stop the sweep at the first failed job: the others are cancelled
}

EXCA_LOCAL = {"_target_": f"{_PLUGINS}.launchers.ExcaLocalLauncher", **_COMMON}

EXCA_SLURM = {
    "_target_": f"{_PLUGINS}.launchers.ExcaSlurmLauncher",
    **_COMMON,
    "max_array_size": None,  # null: Slurm's MaxArraySize
    "wait": True,  # false: exit once the jobs are submitted; re-running the command collects them
    # partition, qos, ..., jobs_per_task (null: array tasks pull jobs until none is left)
    **{k: v for k, v in defaults(SlurmFields, strip=PREFIX).items() if k != "array_parallelism"},
}

EXCA_SWEEPER = {
    "_target_": f"{_PLUGINS}.sweeper.ExcaSweeper",
    "max_batch_size": None,
    "params": None,
    "mode": "cached",  # cached | retry | force | read-only
    "dry_run": False,
    "folder": None,  # cache root, before hydra.launcher.folder and the model's infra.folder
    "best": None,  # the summary names the best job: max:result.accuracy, min:result.loss
}

_store = ConfigStore.instance().store
_store(group="hydra/launcher", name="exca_local", node=EXCA_LOCAL, provider="exca_hydra")
_store(group="hydra/launcher", name="exca_slurm", node=EXCA_SLURM, provider="exca_hydra")
_store(group="hydra/sweeper", name="exca", node=EXCA_SWEEPER, provider="exca_hydra")
