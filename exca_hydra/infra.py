"""TaskInfra: resources next to a computation's parameters, and a cached ``@infra.apply`` method."""

from __future__ import annotations

import contextlib
import functools
import getpass
import inspect
import logging
import sys
import types
import typing as tp
from pathlib import Path

import pydantic

from . import executor as _exec
from .frozen import freeze
from .store import Entry, Status, dump_yaml
from .uid import identity_config, uid_config, uid_string
from .workdir import WorkDir

logger = logging.getLogger(__name__)

Mode = tp.Literal["cached", "retry", "force", "read-only"]
Cluster = _exec.Cluster
Method = tp.Callable[[tp.Any], tp.Any]
_NOTHING: tp.Any = object()

# TaskInfra fields that are submitit parameters, under submitit's names
_SUBMITIT_NAMES = {
    "timeout_min": "timeout_min",
    "nodes": "nodes",
    "tasks_per_node": "tasks_per_node",
    "cpus_per_task": "cpus_per_task",
    "gpus_per_node": "gpus_per_node",
    "mem_gb": "mem_gb",
    "slurm_partition": "slurm_partition",
    "slurm_constraint": "slurm_constraint",
    "slurm_account": "slurm_account",
    "slurm_qos": "slurm_qos",
    "slurm_additional_parameters": "slurm_additional_parameters",
    "slurm_setup": "slurm_setup",
    "slurm_use_srun": "slurm_use_srun",
}


def module_name(cls: type) -> str:
    return import_name(cls.__module__)


def import_name(module: str) -> str:
    """A module's import name; ``__main__`` becomes the script's name."""
    if module == "__main__":
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            return str(spec.name)
        file = getattr(main, "__file__", None)
        return Path(file).stem if file else module
    return module


class _Binding:
    """What an infra instance knows about the config that holds it."""

    __slots__ = ("obj", "name", "method", "exclude", "uid", "computed", "ram")

    def __init__(self, obj: pydantic.BaseModel, name: str, method: Method, exclude: tuple[str, ...]):
        self.obj = obj
        self.name = name
        self.method = method
        self.exclude = exclude
        self.uid: str | None = None
        self.computed = False
        self.ram: tp.Any = _NOTHING


def _bind_infras(obj: pydantic.BaseModel) -> None:
    for name, (method, exclude) in type(obj).__exca_infras__.items():  # type: ignore[attr-defined]
        infra = obj.__dict__.get(name)
        if isinstance(infra, TaskInfra):
            infra._bind(obj, name, method, exclude)


def _keep_class_defaults(obj: pydantic.BaseModel) -> None:
    """An infra given to a config (``infra={"folder": ...}``) keeps the fields set on the class
    default (``infra: TaskInfra = TaskInfra(version="2")``) that it does not set itself."""
    fields = type(obj).model_fields
    for name in type(obj).__exca_infras__:  # type: ignore[attr-defined]
        default = fields[name].default if name in fields else None
        infra = obj.__dict__.get(name)
        if not isinstance(default, TaskInfra) or not isinstance(infra, TaskInfra) or name not in obj.model_fields_set:
            continue
        missing = default.model_fields_set - infra.model_fields_set
        if missing:
            given = {key: infra.__dict__[key] for key in infra.model_fields_set}
            obj.__dict__[name] = type(infra).model_validate({**{k: default.__dict__[k] for k in missing}, **given})


def _hook_owner(owner: type) -> None:
    """Bind infras to their config after validation and after unpickling."""
    if owner.__dict__.get("__exca_hooked__"):
        return
    post_init = owner.model_post_init  # type: ignore[attr-defined]

    def model_post_init(self: pydantic.BaseModel, context: tp.Any, /) -> None:
        post_init(self, context)
        _keep_class_defaults(self)
        _bind_infras(self)

    set_state = owner.__setstate__  # type: ignore[attr-defined]

    def __setstate__(self: pydantic.BaseModel, state: tp.Any) -> None:
        set_state(self, state)
        _bind_infras(self)

    owner.model_post_init = model_post_init  # type: ignore[attr-defined]
    owner.__setstate__ = __setstate__  # type: ignore[attr-defined]
    owner.__exca_hooked__ = True  # type: ignore[attr-defined]


def _submodels(annotation: tp.Any, out: set[type]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if annotation not in out:
            out.add(annotation)
            for info in annotation.model_fields.values():
                _submodels(info.annotation, out)
        return
    for arg in tp.get_args(annotation):
        _submodels(arg, out)


def _forbid_extra_in_submodels(owner: type) -> None:
    """Sub-configs without an explicit ``extra`` setting become strict too (as the owner): an
    unknown key anywhere in the config must fail validation, not vanish silently."""
    localns: dict[str, tp.Any] = {}
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(8):  # classes defined in a function: their names live in its frame
        if frame is None:
            break
        localns = {**frame.f_locals, **localns}
        frame = frame.f_back
    try:
        hints = tp.get_type_hints(owner, localns=localns)
    except Exception:  # unresolved forward references: leave those sub-configs as declared
        hints = dict(getattr(owner, "__annotations__", {}))
    found: set[tp.Any] = set()  # pydantic model classes
    for annotation in hints.values():
        _submodels(annotation, found)
    for cls in found:
        if "extra" not in cls.model_config and not getattr(cls, "_exca_is_infra", False):
            cls.model_config["extra"] = "forbid"
            cls.model_rebuild(force=True)


class TaskInfra(pydantic.BaseModel):
    """Where and how a decorated method runs, and where its result is cached.

    Only ``version`` enters the uid; every other field is a resource or a setting.
    """

    model_config = pydantic.ConfigDict(extra="forbid")
    __slots__ = ("_exca",)
    _exca_is_infra: tp.ClassVar[bool] = True

    folder: Path | None = None
    cluster: Cluster = None
    mode: Mode = "cached"
    version: str = "0"
    keep_in_ram: bool = False
    job_name: str | None = None
    logs: str = "{folder}/logs/{user}/%j"
    timeout_min: int | None = None
    nodes: int | None = 1
    tasks_per_node: int | None = 1
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    mem_gb: float | None = None
    slurm_partition: str | None = None
    slurm_constraint: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_additional_parameters: dict[str, int | str | float | bool] | None = None
    slurm_setup: list[str] | None = None
    slurm_array_parallelism: int = 256
    slurm_use_srun: bool = True  # Slurm's timeout/preemption signals reach job steps only
    workdir: WorkDir | None = None

    @pydantic.field_validator("folder")
    @classmethod
    def _absolute(cls, folder: Path | None) -> Path | None:
        # jobs may start elsewhere (workdir, Slurm): keep the folder they write to unambiguous
        return None if folder is None else Path(folder).expanduser().absolute()

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, version: tp.Any) -> tp.Any:
        # `infra.version=2` on Hydra's command line arrives as an int
        return str(version) if isinstance(version, (int, float)) and not isinstance(version, bool) else version

    @pydantic.field_validator("version")
    @classmethod
    def _safe_version(cls, version: str) -> str:
        if "/" in version or ".." in version or not version:
            raise ValueError(f"version={version!r} must be non-empty without '/' or '..'")
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
        applied = getattr(self, "_exca", None)
        if not isinstance(applied, tuple):
            raise RuntimeError(
                f"Infra '{name}' on {owner.__name__} is not applied to any method: "
                f"decorate the method to run with @{name}.apply"
            )
        # an infra makes its owner strict: typos in a config must fail before anything runs
        owner.model_config.setdefault("extra", "forbid")  # type: ignore[attr-defined]
        _forbid_extra_in_submodels(owner)
        infras = dict(getattr(owner, "__exca_infras__", {}))
        infras[name] = applied
        owner.__exca_infras__ = infras  # type: ignore[attr-defined]
        _hook_owner(owner)
        object.__setattr__(self, "_exca", None)

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
            if getattr(self, "_exca", None) is not None:
                raise RuntimeError("This infra was already applied to a method")
            object.__setattr__(self, "_exca", (function, exclude))
            infra_name: list[str] = []

            @functools.wraps(function)
            def cached_method(obj: pydantic.BaseModel) -> tp.Any:
                if not infra_name:
                    infra_name.extend(n for n, (f, _) in type(obj).__exca_infras__.items() if f is function)  # type: ignore[attr-defined]
                infra = obj.__dict__[infra_name[0]]
                if infra._binding_or_none() is None or infra._exca.obj is not obj:
                    _bind_infras(obj)
                return infra._call()

            cached_method.__exca_method__ = function  # type: ignore[attr-defined]
            return cached_method

        return decorate if method is None else decorate(method)

    # ----- binding -----
    def _bind(self, obj: pydantic.BaseModel, name: str, method: Method, exclude: tuple[str, ...]) -> None:
        current = getattr(self, "_exca", None)
        if isinstance(current, _Binding) and current.obj is obj:
            return
        object.__setattr__(self, "_exca", _Binding(obj, name, method, exclude))

    def _binding_or_none(self) -> _Binding | None:
        binding = getattr(self, "_exca", None)
        return binding if isinstance(binding, _Binding) else None

    def _binding(self) -> _Binding:
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
        return self.folder / f"{module_name(cls)}.{cls.__qualname__}.{binding.method.__name__},{self.version}"

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
        return binding.obj.model_dump(mode="json", exclude_defaults=exclude_defaults)

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
        return type(obj).model_validate(data)

    # ----- execution -----
    def executor(self) -> tp.Any:
        """The submitit executor for this infra's resources (None for cluster=None)."""
        if self.cluster is None:
            return None
        import submitit

        method_dir = self.method_dir()
        logs = self.logs.format(folder=method_dir, user=getpass.getuser())
        cluster = None if self.cluster == "auto" else self.cluster
        executor = submitit.AutoExecutor(folder=logs, cluster=cluster)
        binding = self._binding()
        params: dict[str, tp.Any] = {
            name: getattr(self, field)
            for field, name in _SUBMITIT_NAMES.items()
            if getattr(self, field) is not None
        }
        params["name"] = self.job_name or f"{type(binding.obj).__name__}.{binding.method.__name__}"
        if executor.cluster == "slurm":
            params["slurm_array_parallelism"] = self.slurm_array_parallelism
        executor.update_parameters(**params)
        return executor

    def _effective_mode(self) -> Mode:
        # force/retry act once per object: later calls reuse what they computed
        return "cached" if self._binding().computed and self.mode in ("force", "retry") else self.mode

    def status(self) -> Status:
        entry = self._entry()
        return "not submitted" if entry is None else _exec.entry_status(entry)

    def job(self) -> tp.Any:
        """The job computing this config: reattached if submitted, submitted otherwise."""
        entry = self._entry()
        if entry is None:
            raise RuntimeError("job() requires a cache folder (infra.folder)")
        mode = self._effective_mode()
        if mode == "force":
            self.clear_job()
        status = self.status()
        if status == "failed" and mode == "retry":
            self.clear_job()
            status = "not submitted"
        if status == "not submitted":
            if mode == "read-only":
                raise RuntimeError(f"mode='read-only' but {entry.folder} is not computed")
            return _submit(self, [self])[0]
        ref = entry.read_job()
        job = _exec.job_from_ref(ref) if ref is not None else None
        if job is not None:
            return job
        return _exec.EntryWaiter(entry) if status == "running" else _exec.InlineJob(entry)

    def clear_job(self) -> None:
        """Cancel a running job and forget the result or error (the configs stay)."""
        entry = self._entry()
        if entry is None:
            return
        ref = entry.read_job()
        if ref is not None and not entry.has_result():
            job = _exec.job_from_ref(ref)
            running, _ = _exec.ref_is_running(ref)
            if running and job is not None:
                job.cancel(check=False)
        entry.clear()

    def _call(self) -> tp.Any:
        binding = self._binding()
        if binding.ram is not _NOTHING:
            return binding.ram
        entry = self._entry()
        if entry is None:  # no cache folder: a plain call
            value = binding.method(binding.obj)
        else:
            mode = self._effective_mode()
            status = self.status()
            if mode == "read-only" and status != "completed":
                if status == "failed":
                    raise entry.load_error()
                raise RuntimeError(f"mode='read-only' but {entry.folder} is not computed ({status})")
            if status in ("completed", "failed") and mode != "force":
                self._verify(entry)  # a stale or foreign entry must never be returned
            if status == "failed" and mode == "cached":
                raise entry.load_error()
            if status != "completed" or mode == "force":
                job = self.job()
                _wait(job)
            if self.status() != "completed":  # status() records why a job ended without result
                raise entry.load_error()
            value = entry.load_result()
        if self.keep_in_ram:
            binding.ram = value
        return value

    def _verify(self, entry: Entry) -> None:
        binding = self._binding()
        entry.verify(uid_config(binding.obj, binding.exclude), identity_config(binding.obj, binding.exclude))

    def iter_cached(self) -> tp.Iterator[tp.Any]:
        """Configs of this method's cache folder that have a result, an error or a job."""
        method_dir = self.method_dir()
        if method_dir is None or not method_dir.exists():
            return
        cls = type(self._binding().obj)
        for folder in sorted(method_dir.iterdir()):
            entry = Entry(folder)
            if not folder.is_dir() or not entry.path("config.yaml").exists():
                continue
            if entry.file_status() is None and entry.read_job() is None:
                continue
            yield cls.model_validate(entry.read_config())

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
        mode = self.mode
        missing = []
        for infra in unique:
            status = infra.status()
            if status == "not submitted" or (status == "failed" and mode in ("retry", "force")) or mode == "force":
                if status != "not submitted":
                    infra.clear_job()
                missing.append(infra)
        if mode == "read-only" and missing:
            raise RuntimeError(f"mode='read-only' but {len(missing)} item(s) of the job array are not computed")
        if missing:
            _submit(self, missing, max_workers=max_workers)
        logger.info(
            "Job array: submitted %d job(s), %d already computed or running", len(missing), len(unique) - len(missing)
        )
        for infra in infras:
            infra._binding().computed = True


def _wait(job: tp.Any) -> None:
    try:
        _exec.wait_done(job)
    except Exception:  # the outcome is read from the cache entry, which records the error
        pass


def _submit(base: TaskInfra, infras: tp.Sequence[TaskInfra], max_workers: int | None = None) -> list[tp.Any]:
    """Claim each entry, record the configs, then run here (cluster=None) or submit one batch
    with base's resources. An entry another process claimed is waited for, not run twice."""
    jobs: list[tp.Any] = [None] * len(infras)
    mine: list[tuple[int, TaskInfra, Entry]] = []
    for index, infra in enumerate(infras):
        entry = infra._entry()
        assert entry is not None
        infra._binding().computed = True
        # after the claim, look again: the previous holder may have just finished or submitted
        if not entry.claim() or entry.file_status() is not None or entry.read_job() is not None:
            entry.release()
            jobs[index] = _exec.EntryWaiter(entry)
            continue
        entry.write_configs(infra.config(), infra.config(uid=True))
        mine.append((index, infra, entry))
    executor = base.executor()
    try:
        if executor is None:
            for index, infra, entry in mine:
                binding = infra._binding()
                try:
                    _exec.run_and_store(binding.method, binding.obj, str(entry.folder))
                except Exception:  # recorded in the entry; raised again when the result is read
                    logger.debug("Job %s failed", entry.folder, exc_info=True)
                jobs[index] = _exec.InlineJob(entry)
            return jobs
        if max_workers is not None and executor.cluster == "slurm":
            executor.update_parameters(slurm_array_parallelism=max_workers)
        calls = [(_exec.store_call(i._binding().method, i._binding().obj, str(e.folder)), ()) for _, i, e in mine]
        workdir = base.workdir
        context = workdir.activate(base.folder / "code") if workdir is not None and base.folder else contextlib.nullcontext()
        with context:
            submitted = _exec.submit_array(executor, calls) if calls else []
        for (index, _, entry), job in zip(mine, submitted):
            if type(job).__name__ != "DebugJob":
                entry.write_job(_exec.job_ref(job))
            jobs[index] = job
        return jobs
    finally:
        for _, _, entry in mine:  # job.json or the outcome now says what the claim said
            entry.release()
