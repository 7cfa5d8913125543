"""Launcher and sweeper configs, registered in Hydra's ConfigStore (names as in
hydra-submitit-launcher where the meaning is the same).

Plain dicts rather than dataclasses: Hydra imports this module on every app start, and building
and converting dataclasses costs ~3 ms there. Types are checked by pydantic when launching
(exca_hydra.bridge.launcher.LauncherParams, exca_hydra.bridge.sweeper.SweeperParams, the
same keys and defaults: tests/test_options.py); struct mode still
rejects unknown keys at composition.
"""

from hydra.core.config_store import ConfigStore

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
    "timeout_min": None,  # null: the partition's default time limit (Slurm), none (local)
    "cpus_per_task": None,
    "gpus_per_node": None,
    "tasks_per_node": 1,
    "mem_gb": None,
    "nodes": 1,
    "name": "${hydra.job.name}",
    "stderr_to_stdout": False,
    "fail_fast": False,  # stop the sweep at the first failed job: the others are cancelled
}

EXCA_LOCAL = {"_target_": f"{_PLUGINS}.launchers.ExcaLocalLauncher", **_COMMON}

EXCA_SLURM = {
    "_target_": f"{_PLUGINS}.launchers.ExcaSlurmLauncher",
    **_COMMON,
    "max_array_size": None,  # null: Slurm's MaxArraySize
    "jobs_per_task": None,  # null: array tasks pull jobs until none is left; k: k jobs a task (1: a task per job)
    "partition": None,
    "qos": None,
    "comment": None,
    "constraint": None,
    "exclude": None,
    "gres": None,
    "cpus_per_gpu": None,
    "gpus_per_task": None,
    "mem_per_gpu": None,
    "mem_per_cpu": None,
    "account": None,
    "signal_delay_s": 120,
    "max_num_timeout": 3,  # requeues after a timeout, for a model with a checkpoint() hook
    "additional_parameters": {},
    "setup": None,
    "srun_args": None,
    "python": None,
    "use_srun": True,
}

EXCA_SWEEPER = {
    "_target_": f"{_PLUGINS}.sweeper.ExcaSweeper",
    "max_batch_size": None,
    "params": None,
    "mode": "cached",  # cached | retry | force | read-only
    "dry_run": False,
    "folder": None,  # cache root, before hydra.launcher.folder and the model's infra.folder
}

_store = ConfigStore.instance().store
_store(group="hydra/launcher", name="exca_local", node=EXCA_LOCAL, provider="exca_hydra")
_store(group="hydra/launcher", name="exca_slurm", node=EXCA_SLURM, provider="exca_hydra")
_store(group="hydra/sweeper", name="exca", node=EXCA_SWEEPER, provider="exca_hydra")
