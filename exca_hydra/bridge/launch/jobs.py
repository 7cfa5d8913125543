"""The jobs of a Hydra launch: compose and validate each one (every error listed), give it its
cache entry, and check that the cached outcomes about to be reused are this config's."""

from __future__ import annotations

import gc
import os
import typing as tp
from dataclasses import dataclass, field
from pathlib import Path

import pydantic
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import DictConfig, OmegaConf

from ...cache.layout import class_program, function_program, import_name, method_folder, method_name
from ...cache.errors import OtherProgram, Untrusted
from ...cache.trust import ENV as TRUST_ENV
from ...cache.store import CacheError, Entry, Status
from ...cache.digest import field_digests
from ...cache.kinds import _SECRETS as SECRET_TYPES
from ...cache.kinds import is_secret, is_secret_text
from ...cache.uid import identity_config, uid_config, uid_string
from ...execution.options import Mode
from ...execution.plan import Step, plan
from .compose import FullRecipe, HydraView, Recipe, composer_for, task_container
from .convert import ConfigValidationError, convert, format_errors, masked_overrides
from .task_info import task_info


@dataclass
class HydraJob:
    """One validated job of the sweep.  It keeps no composed config (~85 KB each): ``source``
    rebuilds it on demand (``compose.Recipe``: the shared base config + this job's override
    lines), unless Hydra's full compose made it (then the config itself, or a ``FullRecipe``)."""

    num: int
    overrides: list[str]
    source: tp.Any  # Recipe | FullRecipe | DictConfig
    obj: tp.Any
    entry: Entry | None = None
    uid_cfg: dict[str, tp.Any] | None = None  # what the uid is computed from (computed once)
    step: Step | None = None  # its plan: status read once, what to do
    program: str | None = None  # a plain task's file: entries of another program are not its own
    result: JobReturn | None = field(default=None, repr=False)
    started: float = 0.0
    ended: float = 0.0
    from_cache: bool = False  # its outcome was read from the cache, not computed in this sweep
    config_text: str | None = field(default=None, repr=False)  # a cached job's .hydra/config.yaml, dumped when composed
    _shown: str | None = field(default=None, repr=False)

    @property
    def shown_overrides(self) -> str:
        """The overrides the user typed, as Hydra names a job in messages; a secret's value (a
        pydantic secret field, a secret key of a plain dict config, a password in a URL) as ***:
        these lines are printed, logged and recorded in the sweep's .exca/jobs.jsonl."""
        if self._shown is None:
            self._shown = " ".join(_masked(o, self.obj) for o in filter_overrides(self.overrides))
        return self._shown

    @property
    def uid(self) -> str | None:
        return None if self.entry is None else self.entry.uid

    @property
    def status(self) -> Status:
        return self.step.status if self.step is not None else "not submitted"

    @property
    def config(self) -> DictConfig:
        """The job's composed config (a new one each time, except for a kept full compose)."""
        return self.source if isinstance(self.source, DictConfig) else self.source.build()

    def portable(self) -> tp.Any:
        """What a job process rebuilds the config from: the recipe, or the config itself."""
        return self.source if isinstance(self.source, (Recipe, DictConfig)) else self.source.build()


class Context(tp.NamedTuple):
    """What composing needs of a launcher or a sweeper (both carry these after ``setup``)."""

    config: DictConfig
    hydra_context: tp.Any
    task_function: tp.Any


def prepare(
    context: Context,
    job_overrides: tp.Sequence[tp.Sequence[str]],
    initial_job_idx: int,
    keep_full: bool = True,
    invalid: list[tp.Any] | None = None,
    cached: tp.Callable[[tp.Any], bool] | None = None,
) -> list[HydraJob]:
    """Compose and validate every job; raise one error listing every invalid job (or, given an
    ``invalid`` list, append ``(num, overrides, errors)`` of each to it).  A job keeps the recipe
    of its config, not the config; ``keep_full=False`` (a dry run) does not keep the configs made
    by Hydra's full compose either. A job whose model ``cached`` says is cached keeps its config's
    text for its sweep folder (composing it again later costs ~3 ms a job)."""
    info = task_info(context.task_function)
    model = info.model if info is not None else None
    composer = composer_for(context.hydra_context.config_loader, context.config)
    jobs, failures = [], []
    hydra_config = HydraConfig.instance()
    cfg = None
    try:
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            cfg, recipe = composer.compose_job(overrides, num)
            # for ${hydra:...} in the task's values: what HydraConfig.set_config does, without its
            # masked copy of the whole hydra node (~2 ms a job); the resolver reads cfg.hydra itself
            OmegaConf.set_readonly(cfg.hydra, True)
            hydra_config.cfg = HydraView(cfg.hydra)  # type: ignore[assignment]
            obj, errors = convert(cfg, model, task_container)  # without copying the task part
            if errors:
                failures.append((num, masked_overrides(filter_overrides(overrides), model), errors))
            else:
                if recipe is not None:
                    source: tp.Any = recipe
                elif keep_full:
                    source = cfg
                    OmegaConf.set_readonly(cfg.hydra, False)  # as Hydra composed it
                else:
                    source = FullRecipe(composer, tuple(overrides), num)
                jobs.append(HydraJob(num, list(overrides), source, obj))
                if cached is not None and cached(obj):
                    jobs[-1].config_text = task_yaml(cfg)
            if i % 256 == 255:
                # what the jobs keep (models, recipes) stays: keep the cyclic GC from rescanning it
                # over and over; temporaries still go
                gc.freeze()
    finally:
        gc.unfreeze()
    if cfg is not None:
        hydra_config.set_config(cfg)  # leave HydraConfig as set_config leaves it
    if failures and invalid is None:
        raise ConfigValidationError(format_errors(failures, len(job_overrides)), failures)
    if invalid is not None:
        invalid.extend(failures)
    return jobs


def task_yaml(cfg: DictConfig) -> str:
    """The task's part of a composed config, as Hydra's .hydra/config.yaml holds it."""
    import yaml

    config = {}
    for key in cfg.keys():  # the hydra node left out before converting: it is most of the config
        if key != "hydra":
            node = cfg._get_node(key)
            config[key] = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node._value()  # type: ignore[union-attr]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 10x OmegaConf.to_yaml
    return yaml.dump(config, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


# ----- cache entries -----
_PLUGINS = "hydra_plugins.exca_hydra_plugin."


def configured_folder(hydra_cfg: tp.Any) -> str | None:
    """The cache root a composed ``hydra`` node names: the exca sweeper's ``folder``, else the
    exca launcher's (None: the model's infra.folder).  A relative folder is taken from where the
    app was started, also inside a job that changed directory."""
    for node in ("sweeper", "launcher"):
        plugin = hydra_cfg.get(node)
        if plugin is None or not str(plugin.get("_target_", "")).startswith(_PLUGINS):
            continue
        folder = plugin.get("folder")
        if folder:
            cwd = hydra_cfg.get("runtime", {}).get("cwd") or "."
            return str(Path(cwd, Path(str(folder)).expanduser()).absolute())
    return None


def uncached_maps(obj: tp.Any, path: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """(config path of the infra, Class.method) of each MapInfra below the model without a folder:
    its items are computed again by every job, which a sweep must say."""
    out: list[tuple[str, str]] = []
    if not isinstance(obj, pydantic.BaseModel) or depth > 8:
        return out
    for name, value in obj.__dict__.items():
        where = f"{path}.{name}" if path else name
        if getattr(value, "_exca_is_infra", False):
            if type(value).__name__ == "MapInfra" and value.folder is None:
                methods = [m.__name__ for m, _ in getattr(type(obj), "__exca_infras__", {}).values()]
                out.append((where, f"{type(obj).__name__}.{methods[0] if methods else '?'}"))
        else:
            out += uncached_maps(value, where, depth + 1)
    return out


def cache_root(folder: str | None, obj: tp.Any) -> Path | None:
    """The cache root: the launcher's (or sweeper's) ``folder``, else the model's infra folder."""
    if folder:
        return Path(folder).expanduser().absolute()
    for infra in _infras(obj):
        if infra.folder is not None:
            return Path(infra.folder)
    return None


def _infras(obj: tp.Any) -> list[tp.Any]:
    if isinstance(obj, pydantic.BaseModel):
        return [v for v in obj.__dict__.values() if getattr(v, "_exca_is_infra", False)]
    return []


def _unwrapped(task_function: tp.Any) -> tp.Any:
    """The function a task wrapper (hydra-zen's ``Zen``: ``.func``; functools: ``__wrapped__``) calls."""
    for _ in range(5):
        inner = getattr(task_function, "__wrapped__", None) or getattr(task_function, "func", None)
        if not callable(inner):
            break
        task_function = inner
    return task_function


def task_name(task_function: tp.Any, obj: tp.Any) -> str:
    """The name of what a job computes, as its cache folder says it."""
    info = task_info(task_function)
    if info is None:  # a plain task (hydra-zen's zen(task) wraps it: named after what it wraps)
        function = _unwrapped(task_function)
        name = getattr(function, "__qualname__", type(function).__qualname__)
        code_file = getattr(getattr(function, "__code__", None), "co_filename", None)
        return f"{import_name(getattr(function, '__module__', None) or type(function).__module__, code_file)}.{name}"
    if info.method is not None:
        return method_name(type(obj), info.method.__name__)  # the folder of obj.method() from Python
    # named when decorated: in a job process, __main__ is whatever started the job
    return f"{info.module}.{info.function.__qualname__}"


def entry_of(task_function: tp.Any, folder: str | None, obj: tp.Any, uid_cfg: dict[str, tp.Any] | None = None) -> Entry | None:
    """The cache entry of one job (None: no cache)."""
    root = cache_root(folder, obj)
    info = task_info(task_function)
    if root is None or (info is not None and info.uncached):  # the model's methods cache
        return None
    infras = _infras(obj)
    version = infras[0].version if infras else "0"
    uid = uid_string(uid_config(obj) if uid_cfg is None else uid_cfg)
    return Entry(method_folder(root, task_name(task_function, obj), version) / uid)


def has_result(task_function: tp.Any, folder: str | None, obj: tp.Any) -> bool:
    """Whether this job's entry holds a result (one stat; the plan reads the status again)."""
    entry = entry_of(task_function, folder, obj)
    return entry is not None and entry.has_result()


def assign_entries(task_function: tp.Any, folder: str | None, jobs: tp.Sequence[HydraJob]) -> None:
    program = program_of(task_function)
    info = task_info(task_function)
    for job in jobs:
        job.uid_cfg = uid_config(job.obj)
        job.entry = entry_of(task_function, folder, job.obj, job.uid_cfg)
        if info is not None:  # a model's task: the script its class (or its function) is written in
            program = class_program(type(job.obj)) if info.method is not None else function_program(info.function)
        job.program = program


def program_of(task_function: tp.Any) -> str | None:
    """A plain (DictConfig) task is named by its script and function only: the real path of its
    file tells two projects' ``train.py:main`` apart (a model's task is named by its class)."""
    if task_info(task_function) is not None:
        return None
    code = getattr(task_function, "__code__", None)
    return os.path.realpath(code.co_filename) if code is not None else None


def _masked(override: str, obj: tp.Any) -> str:
    key, sep, value = override.partition("=")
    if sep and (is_secret_text(value.replace("\\", "")) or _secret_at(obj, key.lstrip("+~").split("@")[0].split("."))):
        return f"{key}=***"
    return override


def _secret_at(obj: tp.Any, parts: list[str]) -> bool:
    node, parent = obj, None
    for part in parts:
        if isinstance(node, pydantic.BaseModel):
            node = node.__dict__.get(part)
        elif isinstance(node, (dict, DictConfig)):
            if is_secret(part, None, parent):
                return True
            try:
                node = node.get(part)
            except Exception:  # (an interpolation that does not resolve: not a secret we can see)
                return False
        else:
            return False
        parent = part
    return isinstance(node, SECRET_TYPES)


def full_config(obj: tp.Any) -> dict[str, tp.Any]:
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    return tp.cast(dict, obj)


def verify_entries(jobs: tp.Sequence[HydraJob], reuse: bool = True) -> None:
    """Every cached outcome about to be reused must be this config's: report all that are not
    (edited files, changed defaults, someone else's), and every job to run a folder whose result
    could be loaded, before anything runs. ``reuse=False`` (mode=force): only the latter."""
    problems, others, foreign = [], False, False
    for job in jobs:
        if job.entry is None:
            continue
        try:
            if job.status not in ("completed", "failed") or not reuse:
                if reuse:
                    job.entry.check_program(job.program)  # (one failed open when there is no record)
                if job.step is not None and job.step.action == "run":  # (the result would be refused)
                    job.entry.check_trust()
                continue
            job.entry.verify(job.uid_cfg or uid_config(job.obj), identity_config(job.obj), job.program, field_digests(job.obj))
        except CacheError as e:
            problems.append(f"  #{job.num} : {job.shown_overrides}\n      {e}")
            others = others or isinstance(e, OtherProgram)
            foreign = foreign or isinstance(e, Untrusted)
    if problems:  # another program's entries: forcing would overwrite its results
        how = "give each program its own cache folder" if others else "hydra.sweeper.mode=force recomputes them"
        if foreign:
            raise ConfigValidationError(
                f"{len(problems)} job(s) would use someone else's cache files; nothing was launched (opt in to "
                f"their owner with {TRUST_ENV}, or use a cache folder of your own):\n" + "\n".join(problems)
            )
        raise ConfigValidationError(
            f"{len(problems)} cached entr{'y' if len(problems) == 1 else 'ies'} cannot be reused; nothing was "
            f"launched ({how}):\n" + "\n".join(problems)
        )


def plan_jobs(jobs: tp.Sequence[HydraJob], mode: Mode) -> None:
    """Each job's status, read once, and what to do with it."""
    for job, step in zip(jobs, plan([job.entry for job in jobs], mode)):
        job.step = step
