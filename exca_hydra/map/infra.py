"""MapInfra: one cached output per item of a method that maps many items (exca's API).

``@infra.apply(item_uid=str)`` goes on a method taking an iterable of items and yielding one output
per item. A call computes only the items missing from the cache (in jobs, on the engine's
backends), then returns a generator of every item's output, in order. The config's uid names
the folder as for TaskInfra; the items' keys index the entries inside it (``cache/itemstore.py``).
"""

from __future__ import annotations

import functools
import gc
import hashlib
import inspect
import logging
import time
import typing as tp
from collections import abc
from pathlib import Path

import pydantic

from ..cache.frozen import freeze
from ..cache.itemstore import ITEMS, ItemStore
from ..cache.layout import check_cache_folder, class_program, fix_main_name, method_folder, method_name
from ..cache.store import UID_CONFIG, Entry
from ..cache.digest import field_digests
from ..cache.uid import identity_config, uid_config, uid_string
from ..execution.option_fields import SlurmFields
from ..execution.options import Resources
from ..owner import NOTHING, SLOT, Binding, InfraState, bind_infras, check_excluded, forbid_extra_in_submodels, hook_owner, infra_state
from ..workdir import WorkDir
from .batch import MapItemError

__all__ = ["MapInfra", "MapItemError"]
logger = logging.getLogger("exca_hydra.map")

MapMode = tp.Literal["cached", "force", "read-only"]
MapCluster = tp.Literal[None, "auto", "local", "slurm", "debug", "threadpool", "processpool"]

class MapSpec(tp.NamedTuple):
    item_uid: tp.Callable[[tp.Any], str]
    max_length: int | None
    cache_type: str | None


SPEC = "__exca_map_spec__"  # on the decorated function: travels with it, by value (a script's class) too


class MapBinding(Binding):
    __slots__ = ("spec", "recomputed", "items", "checked")

    def __init__(self, obj: pydantic.BaseModel, name: str, method: tp.Any, exclude: tuple[str, ...]) -> None:
        super().__init__(obj, name, method, exclude)
        self.spec: MapSpec = getattr(method, SPEC)
        self.recomputed: set[str] = set()  # force: each item is recomputed once per object
        self.items: dict[str, tp.Any] = {}  # keep_in_ram
        self.checked = False  # the folder's configs were checked (or written)


def shorten(key: str, max_length: int) -> str:
    """A long key as ``prefix..N..suffix-md5`` (exca's shortening, so keys stay comparable)."""
    if len(key) <= max_length:
        return key
    cut = (max_length - 13 - len(str(len(key)))) // 2
    short = f"{key[:cut]}..{len(key) - 2 * cut}..{key[-cut:]}-" + hashlib.md5(key.encode("utf8")).hexdigest()[:8]
    return key if len(key) < len(short) else short


class MapInfra(SlurmFields, Resources):  # the options' one declaration: option_fields.py
    """Where and how the items of a decorated method are computed, and where they are cached.

    Only ``version`` enters the uid; every other field is a resource or a setting.
    """

    model_config = pydantic.ConfigDict(extra="forbid")
    __slots__ = (SLOT,)  # InfraState: never pickled nor copied
    _exca_is_infra: tp.ClassVar[bool] = True

    folder: Path | None = None
    cluster: MapCluster = None
    mode: MapMode = "cached"
    version: str = "0"
    keep_in_ram: bool = True
    max_jobs: int | None = pydantic.Field(128, ge=1)
    min_samples_per_job: int = pydantic.Field(1, ge=1)
    forbid_single_item_computation: bool = False
    job_name: str | None = None
    logs: str = "{folder}/logs/{user}/%j"
    workdir: WorkDir | None = None

    @pydantic.field_validator("folder")
    @classmethod
    def _absolute(cls, folder: Path | None) -> Path | None:
        if folder is None:
            return None
        folder = Path(folder).expanduser().absolute()
        if not folder.parent.exists():
            raise ValueError(f"Infra folder parent {folder.parent} needs to exist")
        return check_cache_folder(folder)

    @pydantic.field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, version: tp.Any) -> tp.Any:
        if isinstance(version, float):
            raise ValueError(f"version={version!r} was read as a number, which loses its text: give it as a string")
        return str(version) if isinstance(version, int) and not isinstance(version, bool) else version

    @pydantic.field_validator("version")
    @classmethod
    def _safe_version(cls, version: str) -> str:
        if "/" in version or ".." in version or not version:
            raise ValueError(f"version={version!r} must be non-empty without '/' or '..'")
        return version

    @pydantic.model_validator(mode="after")
    def _check(self) -> MapInfra:
        if self.cluster not in (None, "threadpool", "processpool") and self.folder is None:
            raise ValueError(f"cluster={self.cluster!r} requires a folder (the items are computed in jobs)")
        if self.workdir is not None and self.folder is None:
            raise ValueError("workdir requires a folder")
        return self

    def __repr_args__(self) -> tp.Iterator[tuple[str | None, tp.Any]]:
        for name in self.model_fields_set:
            yield name, getattr(self, name)

    # ----- declaration -----
    def __set_name__(self, owner: type, name: str) -> None:
        if not (isinstance(owner, type) and issubclass(owner, pydantic.BaseModel)):
            raise RuntimeError(f"MapInfra cannot be used on {owner.__name__}: declare it as a field of a pydantic.BaseModel")
        state = self._state
        applied = state.applied
        if applied is None:
            raise RuntimeError(
                f"Infra '{name}' on {owner.__name__} is not applied to any method: "
                f"decorate the method to map with @{name}.apply(item_uid=...)"
            )
        check_excluded(owner, applied[1])
        fix_main_name(owner)  # named where it is defined, whichever process runs it later
        owner.model_config.setdefault("extra", "forbid")  # type: ignore[attr-defined]
        forbid_extra_in_submodels(owner)
        infras = dict(getattr(owner, "__exca_infras__", {}))
        infras[name] = applied
        owner.__exca_infras__ = infras  # type: ignore[attr-defined]
        hook_owner(owner)
        state.applied = None  # the class holds it now

    @property
    def _state(self) -> InfraState[MapBinding]:
        return infra_state(self)

    def apply(
        self,
        *,
        item_uid: tp.Callable[[tp.Any], str],
        item_uid_max_length: int | None = 256,
        exclude_from_cache_uid: tp.Iterable[str] = (),
        cache_type: str | None = None,
    ) -> tp.Callable[[tp.Any], tp.Any]:
        """Decorate a method taking ``self`` and an iterable of items, yielding one output per item.
        ``cache_type="Pickle"`` pickles every output (arrays included)."""
        if cache_type not in (None, "Pickle"):  # exca's other cache types are not built here
            raise ValueError(f"cache_type={cache_type!r} is not supported: None (each output stored by its "
                             "kind: JSON, raw numpy array, else pickled) or 'Pickle' (every output pickled)")  # fmt: skip
        if item_uid_max_length is not None and item_uid_max_length < 32:
            raise ValueError(f"max_length of item_uid should be at least 32, got {item_uid_max_length}")
        if self._state.applied is not None or self._state.binding is not None:
            raise RuntimeError("Infra was already applied to a method")
        exclude = tuple(exclude_from_cache_uid)

        def decorate(function: tp.Any) -> tp.Any:
            _check_signature(function)
            setattr(function, SPEC, MapSpec(item_uid, item_uid_max_length, cache_type))
            self._state.applied = (function, exclude)
            infra_name: list[str] = []

            @functools.wraps(function)
            def mapped_method(obj: pydantic.BaseModel, *args: tp.Any, **kwargs: tp.Any) -> tp.Iterator[tp.Any]:
                if len(args) + len(kwargs) != 1:
                    raise ValueError(f"Method {function.__qualname__} only takes 1 argument, got {args=} and {kwargs=}")
                items = args[0] if args else next(iter(kwargs.values()))
                if not infra_name:
                    infra_name.extend(n for n, (f, _) in type(obj).__exca_infras__.items() if f is function)  # type: ignore[attr-defined]
                infra = obj.__dict__[infra_name[0]]
                binding = infra._binding_or_none()
                if binding is None or binding.obj is not obj:
                    bind_infras(obj)
                return infra._map(items)  # type: ignore[no-any-return]

            mapped_method.__exca_method__ = function  # type: ignore[attr-defined]
            return mapped_method

        return decorate

    # ----- binding -----
    def _bind(self, obj: pydantic.BaseModel, name: str, method: tp.Any, exclude: tuple[str, ...]) -> None:
        state = self._state
        if state.binding is None or state.binding.obj is not obj:
            state.binding = MapBinding(obj, name, method, exclude)

    def _binding_or_none(self) -> MapBinding | None:
        return self._state.binding

    def _binding(self) -> MapBinding:
        binding = self._binding_or_none()
        if binding is None:
            raise RuntimeError("This MapInfra is not attached to a config: use the infra of a model instance (obj.infra)")
        return binding

    # ----- identity and folders -----
    def uid(self) -> str:
        binding = self._binding()
        if binding.uid is None:
            binding.uid = uid_string(uid_config(binding.obj, binding.exclude))
            freeze(binding.obj)
        return binding.uid

    def uid_folder(self, create: bool = False) -> Path | None:
        if self.folder is None:
            return None
        binding = self._binding()
        folder = method_folder(self.folder, method_name(type(binding.obj), binding.method.__name__), self.version) / self.uid()
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def config(self, uid: bool = False, exclude_defaults: bool = False) -> dict[str, tp.Any]:
        binding = self._binding()
        if uid:
            return uid_config(binding.obj, binding.exclude)
        return binding.obj.model_dump(mode="json", exclude_defaults=exclude_defaults)

    def store(self) -> ItemStore | None:
        """The item store of this config (None without a folder); its configs checked once."""
        folder = self.uid_folder()
        if folder is None:
            return None
        binding = self._binding()
        has_configs = (folder / UID_CONFIG).exists()  # one stat a call: a cleared entry is seen
        if not binding.checked or not has_configs:
            entry = Entry(folder)
            uid_cfg = uid_config(binding.obj, binding.exclude)
            if has_configs:  # a stale or foreign folder must never serve items
                entry.verify(uid_cfg, identity_config(binding.obj, binding.exclude), class_program(type(binding.obj)),
                             field_digests(binding.obj, binding.exclude))
            else:  # items without the configs that say whose they are are never served
                if self.mode == "read-only":
                    _warn_orphans(folder, None)
                    return ItemStore(folder, readable=False)  # every item is missing
                _warn_orphans(folder, _set_aside(folder))
                entry.write_configs(self.config(), uid_cfg, class_program(type(binding.obj)), field_digests(binding.obj, binding.exclude))
            binding.checked = True
        return ItemStore.get(folder)

    def item_keys(self, items: tp.Sequence[tp.Any]) -> list[str]:
        spec = self._binding().spec
        keys = [spec.item_uid(item) for item in items]
        for key, item in zip(keys, items):
            if type(key) is not str:
                raise TypeError(f"item_uid must return a str, got {type(key).__name__} {key!r} for item {item!r}")
            break
        if spec.max_length is not None:
            limit = spec.max_length
            keys = [k if len(k) <= limit else shorten(k, limit) for k in keys]
        return keys

    # ----- the call -----
    def _map(self, items: tp.Iterable[tp.Any]) -> tp.Iterator[tp.Any]:
        binding = self._binding()
        items = list(items)
        keys = self.item_keys(items)
        unique = dict(zip(keys, items))
        store = self.store()
        ram = binding.items if self.keep_in_ram else None
        if self.mode == "force" and store is not None:
            todo = [k for k in unique if k not in binding.recomputed]
        elif store is None:
            todo = [k for k in unique if ram is None or k not in ram]
        else:
            todo = [k for k in unique if (ram is None or k not in ram)]
            todo = store.missing(todo)
            if todo and store.refresh():
                todo = store.missing(todo)
        if todo:
            self._check_missing(todo, unique)
            if self.mode == "force" and store is not None:
                store.forget(todo)
                if ram is not None:
                    for key in todo:
                        ram.pop(key, None)
            from .compute import compute  # the engine's import: only when something is computed

            outputs = compute(self, [(k, unique[k]) for k in todo])
            if store is None and ram is not None:
                ram.update(outputs)
            elif self.mode == "force" and store is not None:
                binding.recomputed.update(todo)
        else:
            outputs = {}
        if store is None:
            source = outputs if ram is None else ram
            return (source[k] for k in keys)
        read = store.reader()
        if ram is None:
            return _read_ahead(keys, read)
        return _through_ram(keys, ram, read)

    def _check_missing(self, todo: list[str], unique: dict[str, tp.Any]) -> None:
        if self.mode == "read-only":
            shown = ", ".join(f"{unique[k]!r}" for k in todo[:5])
            more = f" and {len(todo) - 5} more" if len(todo) > 5 else ""
            raise RuntimeError(
                f"mode='read-only' but {len(todo)} item(s) are missing from the cache "
                f"{self.uid_folder()}: {shown}{more}"
            )
        if len(unique) == len(todo) == 1 and self.forbid_single_item_computation:
            key = todo[0]
            raise RuntimeError(
                f"Trying to compute single item {unique[key]!r} with key {key!r}\n"
                f"for model with config {self.config(uid=True)}\n"
                "but this is is forbidden by 'infra.forbid_single_item_computation=True'"
            )


def _set_aside(folder: Path) -> Path | None:
    """Move items without uid.yaml aside (None: there are none, or they cannot be moved)."""
    items = folder / ITEMS
    if not items.is_dir():
        return None
    aside = folder / f"{ITEMS}.orphaned-{int(time.time())}"
    try:
        items.rename(aside)
    except OSError:
        return None
    return aside


def _warn_orphans(folder: Path, aside: Path | None) -> None:
    if aside is not None or (folder / ITEMS).is_dir():
        logger.warning("%s holds items but no %s (the entry was cleared while they were computed?): they are "
                       "not served%s", folder, UID_CONFIG, f", kept aside in {aside}" if aside else "")  # fmt: skip


def _read_ahead(keys: tp.Sequence[str], read: tp.Callable[[str], tp.Any], ahead: int = 1024) -> tp.Iterator[tp.Any]:
    """Read by chunks with the cyclic GC paused: each read makes new objects (a fresh copy of a
    JSON value) and no garbage, and collections rescanning a big heap would cost more than the reads."""
    for start in range(0, len(keys), ahead):
        collecting = gc.isenabled()
        gc.disable()
        try:
            chunk = [read(k) for k in keys[start : start + ahead]]
        finally:
            if collecting:
                gc.enable()
        yield from chunk


def _through_ram(keys: list[str], ram: dict[str, tp.Any], read: tp.Callable[[str], tp.Any]) -> tp.Iterator[tp.Any]:
    for key in keys:
        value = ram.get(key, NOTHING)
        if value is NOTHING:
            value = ram[key] = read(key)
        yield value


def _check_signature(function: tp.Any) -> None:
    params = inspect.signature(function).parameters
    if len(params) != 2 or "self" not in params:
        raise ValueError(
            f"MapInfra cannot be applied on method {function.__module__}.{function.__qualname__!r} as this method "
            f"should take exactly 'self' and 1 input parameter.\n(found parameter(s): {list(params)})"
        )
    name, param = list(params.items())[1]
    annotation = param.annotation
    if isinstance(annotation, str):  # postponed annotations
        try:
            annotation = tp.get_type_hints(function).get(name, inspect.Parameter.empty)
        except Exception:  # noqa: BLE001 - names local to a function: not checked
            return
    if annotation is inspect.Parameter.empty:
        return
    if tp.get_origin(annotation) not in (list, tuple, abc.Iterable, abc.Sequence) and annotation not in (list, tuple):
        raise TypeError(
            "Decorated method single argument should be annotated as List, Tuple, Sequence or Iterable "
            f"(got {annotation!r})"
        )
