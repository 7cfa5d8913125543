"""Launcher and sweeper configs, registered in Hydra's ConfigStore (names as in
hydra-submitit-launcher where the meaning is the same)."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

_PLUGINS = "hydra_plugins.exca_hydra_plugin"


@dataclass
class BaseExcaConf:
    folder: Optional[str] = None  # cache root; null: the model's infra.folder, else no cache
    array_parallelism: Optional[int] = None  # jobs running at once


@dataclass
class ExcaLocalConf(BaseExcaConf):
    _target_: str = f"{_PLUGINS}.launchers.ExcaLocalLauncher"


@dataclass
class ExcaSlurmConf(BaseExcaConf):
    _target_: str = f"{_PLUGINS}.launchers.ExcaSlurmLauncher"
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    max_array_size: Optional[int] = None  # null: Slurm's MaxArraySize
    timeout_min: int = 60
    cpus_per_task: Optional[int] = None
    gpus_per_node: Optional[int] = None
    tasks_per_node: int = 1
    mem_gb: Optional[int] = None
    nodes: int = 1
    name: str = "${hydra.job.name}"
    stderr_to_stdout: bool = False
    partition: Optional[str] = None
    qos: Optional[str] = None
    comment: Optional[str] = None
    constraint: Optional[str] = None
    exclude: Optional[str] = None
    gres: Optional[str] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    account: Optional[str] = None
    signal_delay_s: int = 120
    max_num_timeout: int = 0
    additional_parameters: Dict[str, Any] = field(default_factory=dict)
    setup: Optional[List[str]] = None


ConfigStore.instance().store(group="hydra/launcher", name="exca_local", node=ExcaLocalConf, provider="exca_hydra")
ConfigStore.instance().store(group="hydra/launcher", name="exca_slurm", node=ExcaSlurmConf, provider="exca_hydra")


@dataclass
class ExcaSweeperConf:
    _target_: str = f"{_PLUGINS}.sweeper.ExcaSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    mode: str = "cached"  # cached | retry | force | read-only
    dry_run: bool = False
    folder: Optional[str] = None  # cache root when the launcher has none


ConfigStore.instance().store(group="hydra/sweeper", name="exca", node=ExcaSweeperConf, provider="exca_hydra")
