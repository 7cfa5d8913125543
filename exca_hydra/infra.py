"""TaskInfra: resources next to a computation's parameters, and a cached ``@infra.apply`` method.
Calls go through the execution engine (plan -> claim -> backend -> outcome in the entry)."""

from __future__ import annotations

import contextlib
import functools
import getpass
import inspect
import logging
import typing as tp
from pathlib import Path

import pydantic

from .cache.frozen import freeze
from .cache.layout import check_cache_folder, class_program, fix_main_name, method_folder, method_name
from .cache.errors import CacheError
from .cache.store import Entry, Status, dump_yaml
from .cache.digest import field_digests
from .cache.kinds import _model_members
from .cache.uid import identity_config, uid_config, uid_string
from .execution import engine
from .execution import jobref
from .execution.backends import Backend, InlineBackend
from .execution.option_fields import SlurmFields
from .execution.options import Cluster, Mode, Resources, SlurmOptions, slurm_options
from .execution.plan import plan, read_status
from .execution.pull import slurm_backend
from .owner import NOTHING, SLOT, Binding, InfraState, Method, bind_infras, check_excluded, forbid_extra_in_submodels, hook_owner, infra_state
from .submission import submit, unchanged
from .workdir import WorkDir

logger = logging.getLogger(__name__)

__all__ = ["TaskInfra", "Mode", "Cluster"]


class _Settings(Resources):
    """TaskInfra's fields shown before the Slurm options (fields follow the bases' order)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    folder: Path | None = None
    cluster: Cluster = None
    mode: Mode = "cached"
    version: str = "0"
    keep_in_ram: bool = False
    job_name: str | None = None
    logs: str = "{folder}/logs/{user}/%j"


class TaskInfra(SlurmFields, _Settings):
    """Where and how a decorated method runs, and where its result is cached.

    Only ``version`` enters the uid; every other field is a resource or a setting. The resources
    (``timeout_min``, ...) and Slurm options (``slurm_partition``, ...) are declared once, in
    ``execution/option_fields.py``.
    """

    model_config = pydantic.ConfigDict(extra="forbid")
    __slots__ = (SLOT,)  # InfraState: never pickled nor copied
    _exca_is_infra: tp.ClassVar[bool] = True

    workdir: WorkDir | None = None

    @pydantic.field_validator("folder")
    @classmethod
    def _absolute(cls, folder: Path | None) -> Path | None:
        # jobs may start elsewhere (workdir, Slurm): keep the folder they write to unambiguous
        return None if folder is None else check_cache_folder(Path(folder).expanduser().absolute())

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, version: tp.Any) -> tp.Any:
        # `infra.version=2` on Hydra's command line arrives as an int; `1.10` as the float 1.1,
        # whose text is not what was written: refused rather than read as version 1.1
        if isinstance(version, float):
            raise ValueError(
                f"version={version!r} was read as a number, which loses its text (1.10 reads as 1.1): "
                "give it as a string, e.g. \"infra.version='1.10'\" on the command line (quotes "
                "included) or version: '1.10' in YAML"
            )
        return str(version) if isinstance(version, int) and not isinstance(version, bool) else version

    @pydantic.field_validator("version")
    @classmethod
    def _safe_version(cls, version: str) -> str:
        if "/" in version or ".." in version or not version or len(version) > 64 or not version.isprintable():
            raise ValueError(f"version={version[:80]!r} must be 1 to 64 printable characters, without '/' or '..'")
        return version

    @pydantic.model_validator(mode="after")
    def _check_resources(self) -> "TaskInfra":
        if self.cluster is not None and self.folder is None:
            raise ValueError(f"cluster={self.cluster!r} requires a folder (only cluster=None runs without one)")
        if self.workdir is not None and self.folder is None:
            raise ValueError("workdir requires a folder")
        if (self.tasks_per_node or 1) > 1 and self.cluster in ("slurm", "auto") and not self.slurm_use_srun:
            raise ValueError("tasks_per_node > 1 on Slurm requires slurm_use_srun=True")
        return self

    def __repr_args__(self) -> tp.Iterator[tuple[str | None, tp.Any]]:
        # resources are many: show only what was set
        for name in self.model_fields_set:
            yield name, getattr(self, name)

    # ----- declaration -----
    def __set_name__(self, owner: type, name: str) -> None:
        if not (isinstance(owner, type) and issubclass(owner, pydantic.BaseModel)):
            raise RuntimeError(
                f"TaskInfra cannot be used on {owner.__name__}: declare it as a field of a "
                "pydantic.BaseModel subclass (class MyTask(pydantic.BaseModel): infra: TaskInfra = TaskInfra())"
            )
        state = self._state
        applied = state.applied
        if applied is None:
            raise RuntimeError(
                f"Infra '{name}' on {owner.__name__} is not applied to any method: "
                f"decorate the method to run with @{name}.apply"
            )
        check_excluded(owner, applied[1])
        fix_main_name(owner)  # named where it is defined, whichever process runs it later
        # an infra makes its owner strict: typos in a config must fail before anything runs
        owner.model_config.setdefault("extra", "forbid")  # type: ignore[attr-defined]
        forbid_extra_in_submodels(owner)
        infras = dict(getattr(owner, "__exca_infras__", {}))
        infras[name] = applied
        owner.__exca_infras__ = infras  # type: ignore[attr-defined]
        hook_owner(owner)
        state.applied = None  # the class holds it now

    @property
    def _state(self) -> InfraState[Binding]:
        return infra_state(self)

    def apply(
        self, method: Method | None = None, *, exclude_from_cache_uid: tp.Iterable[str] = ()
    ) -> tp.Any:
        """Decorate a method taking only ``self``: calls return its cached (or computed) result."""
        exclude = tuple(exclude_from_cache_uid)

        def decorate(function: Method) -> Method:
            params = list(inspect.signature(function).parameters)
            if params != ["self"]:
                raise ValueError(
                    f"@infra.apply cannot decorate {function.__qualname__}: the method must take only "
                    f"'self' (found {params}). Move the other inputs into the config's fields."
                )
            if inspect.iscoroutinefunction(function) or inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
                raise TypeError(f"@infra.apply cannot decorate {function.__qualname__}: it returns a coroutine or a "
                                "generator, which cannot be cached; return the value itself (e.g. a list)")  # fmt: skip
            state = self._state
            if state.applied is not None or state.binding is not None:
                raise RuntimeError("This infra was already applied to a method")
            state.applied = (function, exclude)
            infra_name: list[str] = []

            @functools.wraps(function)
            def cached_method(obj: pydantic.BaseModel) -> tp.Any:
                if not infra_name:
                    infra_name.extend(n for n, (f, _) in type(obj).__exca_infras__.items() if f is function)  # type: ignore[attr-defined]
                infra = obj.__dict__[infra_name[0]]
                binding = infra._binding_or_none()
                if binding is None or binding.obj is not obj:
                    bind_infras(obj)
                return infra._call()

            cached_method.__exca_method__ = function  # type: ignore[attr-defined]
            return cached_method

        return decorate if method is None else decorate(method)

    # ----- binding -----
    def _bind(self, obj: pydantic.BaseModel, name: str, method: Method, exclude: tuple[str, ...]) -> None:
        state = self._state
        if state.binding is None or state.binding.obj is not obj:
            state.binding = Binding(obj, name, method, exclude)

    def _binding_or_none(self) -> Binding | None:
        return self._state.binding

    def _binding(self) -> Binding:
        binding = self._binding_or_none()
        if binding is None:
            raise RuntimeError(
                "This TaskInfra is not attached to a config: use the infra of a model instance "
                "(obj.infra), declared as a field of a model with an @infra.apply method"
            )
        return binding

    # ----- identity and folders -----
    def uid(self) -> str:
        """Stable id of the config; computing it freezes the config."""
        binding = self._binding()
        if binding.uid is None:
            binding.uid = uid_string(uid_config(binding.obj, binding.exclude))
            freeze(binding.obj)
        return binding.uid

    def method_dir(self) -> Path | None:
        if self.folder is None:
            return None
        binding = self._binding()
        cls = type(binding.obj)
        return method_folder(self.folder, method_name(cls, binding.method.__name__), self.version)

    def uid_folder(self, create: bool = False) -> Path | None:
        """The config's own folder (for checkpoints...), or None without a cache folder."""
        method_dir = self.method_dir()
        if method_dir is None:
            return None
        folder = method_dir / self.uid()
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _entry(self) -> Entry | None:
        folder = self.uid_folder()
        return None if folder is None else Entry(folder)

    def config(self, uid: bool = False, exclude_defaults: bool = False) -> dict[str, tp.Any]:
        """The config as a dict: what the uid is computed from, or the whole (json-ready) config."""
        binding = self._binding()
        if uid:
            return uid_config(binding.obj, binding.exclude)
        try:
            return binding.obj.model_dump(mode="json", exclude_defaults=exclude_defaults)
        except TypeError:  # e.g. set or frozenset dict keys, which JSON cannot hold
            import pydantic_core

            data = _stable_keys(binding.obj.model_dump(exclude_defaults=exclude_defaults))
            return pydantic_core.to_jsonable_python(data)  # type: ignore[no-any-return]

    def clone_obj(self, diff: dict[str, tp.Any] | None = None, **kwargs: tp.Any) -> tp.Any:
        """A new validated config with dotted-key changes, e.g. ``{"model.layers": 14}``."""
        if diff is not None and kwargs:
            raise ValueError("clone_obj takes a dict or keyword arguments, not both")
        changes = dict(diff or kwargs)
        obj = self._binding().obj
        data = obj.model_dump()
        for key, value in changes.items():
            *parents, last = key.split(".")
            node = data
            for i, part in enumerate(parents):
                child = node.get(part) if isinstance(node, dict) else None
                if not isinstance(child, dict):
                    raise KeyError(f"clone_obj: {'.'.join(parents[: i + 1])} is not a sub-config (key {key!r})")
                node = child
            node[last] = value
        _keep_subclasses(data, obj, changes)
        return type(obj).model_validate(data)

    # ----- execution -----
    def slurm_options(self) -> SlurmOptions:
        return slurm_options(self)

    def backend(self, max_workers: int | None = None) -> Backend:
        """Where this infra's jobs run: here (cluster=None) or through submitit."""
        if self.cluster is None:
            return InlineBackend()
        binding = self._binding()
        logs = Path(self.logs.format(folder=self.method_dir(), user=getpass.getuser()))
        options = self.slurm_options()
        if max_workers is not None:
            options.slurm_array_parallelism = max_workers
        name = self.job_name or f"{type(binding.obj).__name__}.{binding.method.__name__}"
        return slurm_backend(None if self.cluster == "auto" else self.cluster, logs, self, options, name=name)

    def executor(self) -> tp.Any:
        """The submitit executor for this infra's resources (None for cluster=None)."""
        backend = self.backend()
        return getattr(backend, "executor", None)

    def _effective_mode(self) -> Mode:
        # force/retry act once per object: later calls reuse what they computed
        return "cached" if self._binding().computed and self.mode in ("force", "retry") else self.mode

    def status(self) -> Status:
        entry = self._entry()
        return "not submitted" if entry is None else read_status(entry)[0]

    def job(self) -> tp.Any:
        """The job computing this config: reattached if submitted, submitted otherwise."""
        entry = self._entry()
        if entry is None:
            raise RuntimeError("job() requires a cache folder (infra.folder)")
        mode = self._effective_mode()
        step = plan([entry], mode)[0]
        if step.action == "skip" and step.status == "not submitted":
            raise RuntimeError(f"mode='read-only' but {entry.folder} is not computed")
        if step.action == "run":
            job = submit(self, [self], [step])[0]
            if job is not None:
                return job
        ref = entry.read_job()
        return engine.EntryJob(entry, None if ref is None else jobref.parse(ref))  # results read from the entry, trusted

    def clear_job(self) -> None:
        """Cancel a running job and forget the result or error (the configs stay)."""
        entry = self._entry()
        if entry is None:
            return
        ref = entry.read_job()
        if ref is not None and not entry.has_result():
            job = jobref.parse(ref)
            if job.is_alive():
                job.cancel()
        entry.clear()

    def _call(self) -> tp.Any:
        binding = self._binding()
        if binding.ram is not NOTHING:
            return binding.ram
        entry = self._entry()
        if entry is None:  # no cache folder: a plain call
            value = binding.method(binding.obj)
        else:
            mode = self._effective_mode()
            unchanged(self)  # (changed in place after its uid: its folder is another config's)
            step = plan([entry], mode)[0]
            if step.status in ("completed", "failed") and mode != "force":
                self._verify(entry)  # a stale or foreign entry must never be returned
            if step.action == "skip" and step.status != "completed":
                if step.status == "failed":
                    raise step.failure or entry.load_error()
                raise RuntimeError(f"mode='read-only' but {entry.folder} is not computed ({step.status})")
            if step.action != "skip":
                if step.action == "run":
                    submit(self, [self], [step])
                status, failure = engine.wait_for([entry])[0]
                if step.action == "wait" and status == "not submitted":  # its owner ended without an outcome
                    logger.warning("%s: the process computing it ended without an outcome; computing it here", entry.folder)
                    step = plan([entry], mode)[0]
                    if step.action == "run":
                        submit(self, [self], [step])
                    status, failure = engine.wait_for([entry])[0]
                if status != "completed" and not entry.folder.is_dir():
                    raise CacheError(f"{entry.folder} was removed while its job ran (exca-hydra clear?): its "
                                     "outcome was not stored; call again to compute it")  # fmt: skip
                if status != "completed":
                    if failure is not None:
                        engine.record_lost(entry, failure)
                    raise failure or entry.load_error()
            value = entry.load_result()
        if self.keep_in_ram:
            binding.ram = value
        return value

    def _verify(self, entry: Entry) -> None:
        binding = self._binding()
        entry.verify(uid_config(binding.obj, binding.exclude), identity_config(binding.obj, binding.exclude),
                     class_program(type(binding.obj)), field_digests(binding.obj, binding.exclude))  # fmt: skip

    def iter_cached(self) -> tp.Iterator[tp.Any]:
        """Configs of this method's cache folder that have a result, an error or a job. A config
        is rebuilt from config.yaml's text, which cannot hold every kind (a tuple is written as a
        list, an Enum as its value): one whose uid is not its entry's is skipped, with a warning,
        rather than yielded as another config."""
        method_dir = self.method_dir()
        if method_dir is None or not method_dir.exists():
            return
        binding = self._binding()
        cls = type(binding.obj)
        skipped = []
        for folder in sorted(method_dir.iterdir()):
            entry = Entry(folder)
            if not folder.is_dir() or not entry.path("config.yaml").exists():
                continue
            if entry.file_status() is None and entry.read_job() is None:
                continue
            obj = cls.model_validate(entry.read_config())
            if uid_string(uid_config(obj, binding.exclude)) != folder.name:
                skipped.append(folder.name)
                continue
            yield obj
        if skipped:
            logger.warning("iter_cached: %d entr%s of %s could not be rebuilt as the config they hold (kinds config.yaml "
                           "cannot write, e.g. a tuple or an Enum in a tp.Any field), skipped: %s", len(skipped),
                           "y" if len(skipped) == 1 else "ies", method_dir, ", ".join(skipped[:5]))  # fmt: skip

    @contextlib.contextmanager
    def job_array(
        self, max_workers: int | None = None, allow_empty: bool = False, allow_repeated_tasks: bool = False
    ) -> tp.Iterator[list[tp.Any]]:
        """Collect configs; on exit submit the missing ones as one array (non-blocking)."""
        tasks: list[tp.Any] = []
        yield tasks
        if not tasks:
            if allow_empty:
                return
            raise RuntimeError("Nothing was added to the job array (use allow_empty=True to allow it)")
        name = self._binding().name
        infras: list[TaskInfra] = [getattr(task, name) for task in tasks]
        seen: dict[str, int] = {}
        unique: list[TaskInfra] = []
        for index, infra in enumerate(infras):
            uid = infra.uid()
            if uid in seen:
                if not allow_repeated_tasks:
                    first = seen[uid]
                    raise ValueError(
                        f"The job array contains duplicates: items {first} and {index} share uid {uid}:\n"
                        f"{dump_yaml(infra.config(uid=True))}(allow them with job_array(allow_repeated_tasks=True))"
                    )
                logger.warning("Dropping item %s of the job array: same uid as item %s", index, seen[uid])
                continue
            seen[uid] = index
            unique.append(infra)
        steps = plan([infra._entry() for infra in unique], self.mode)
        missing = [step for step in steps if step.action == "run" or (self.mode == "read-only" and step.status != "completed")]
        if self.mode == "read-only" and missing:
            raise RuntimeError(f"mode='read-only' but {len(missing)} item(s) of the job array are not computed")
        to_run = [(infra, step) for infra, step in zip(unique, steps) if step.action == "run"]
        if to_run:
            submit(self, [infra for infra, _ in to_run], [step for _, step in to_run], max_workers=max_workers)
        logger.info(
            "Job array: submitted %d job(s), %d already computed or running", len(to_run), len(unique) - len(to_run)
        )
        for infra in infras:
            infra._binding().computed = True


def _keep_subclasses(data: dict[str, tp.Any], obj: pydantic.BaseModel, changes: dict[str, tp.Any], path: str = "") -> None:
    """A sub-config that is an instance of a subclass of its field's class (``Adam`` in ``opt:
    Opt``) would be rebuilt from its dict as the field's class: rebuilt as its own class instead
    (with the changes under it), or kept as it is when nothing under it changed."""
    for name, value in obj.__dict__.items():
        where = f"{path}{name}"
        if isinstance(value, (list, tuple, dict)) and not any(key == where or key.startswith(where + ".") for key in changes):
            items = value.values() if isinstance(value, dict) else value
            if any(isinstance(v, pydantic.BaseModel) for v in items):  # models in a list or a dict: as they are
                data[name] = value
            continue
        if not isinstance(value, pydantic.BaseModel) or not isinstance(data.get(name), dict):
            continue
        field = type(obj).model_fields.get(name)
        declared = field.annotation if field is not None else None
        if getattr(type(value), "_exca_is_infra", False) or where in changes:
            continue  # (replaced whole: as the new value says)
        own = type(value) not in _model_members(declared)  # (a member of the field's union: rebuilt as itself)
        if own:
            # dumped as the field's class (its own fields lost): dumped again as its own, changes re-applied
            data[name] = value.model_dump()
            for key, change in changes.items():
                if key.startswith(where + "."):
                    *parents, last = key[len(where) + 1 :].split(".")
                    node = data[name]
                    for part in parents:
                        node = node[part]
                    node[last] = change
        _keep_subclasses(data[name], value, changes, where + ".")
        if own:
            data[name] = type(value).model_validate(data[name])


def _stable_keys(value: tp.Any) -> tp.Any:
    """Dict keys JSON can hold, as identity_config writes them (a set's elements sorted)."""
    from .cache.uid import _json_key

    if isinstance(value, dict):
        return {_json_key(k): _stable_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable_keys(v) for v in value]
    return value
