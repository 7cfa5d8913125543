"""How a config class holds its infras: each infra instance is bound to the config object that
holds it (after validation and after unpickling), and declaring an infra makes the class and its
sub-configs strict (an unknown key fails validation)."""

from __future__ import annotations

import dataclasses
import sys
import types
import typing as tp

import pydantic

Method = tp.Callable[[tp.Any], tp.Any]
NOTHING: tp.Any = object()  # no value kept in RAM


class Binding:
    """What an infra instance knows about the config that holds it."""

    __slots__ = ("obj", "name", "method", "exclude", "uid", "computed", "ram")

    def __init__(self, obj: pydantic.BaseModel, name: str, method: Method, exclude: tuple[str, ...]):
        self.obj = obj
        self.name = name
        self.method = method
        self.exclude = exclude
        self.uid: str | None = None
        self.computed = False
        self.ram: tp.Any = NOTHING


B = tp.TypeVar("B", bound=Binding)


@dataclasses.dataclass
class InfraState(tp.Generic[B]):
    """An infra instance's private state, in a slot that pydantic neither pickles nor copies: an
    unpickled or copied infra starts unbound (its owner's ``__setstate__`` binds it again)."""

    applied: tuple[Method, tuple[str, ...]] | None = None  # @apply ran, the owner class is not built yet
    binding: B | None = None  # the config object holding this instance


SLOT = "_exca_state"


def infra_state(infra: tp.Any) -> InfraState[tp.Any]:
    """The infra's state, a fresh one when its slot is unset (new, unpickled or copied)."""
    state: InfraState[tp.Any] | None = getattr(infra, SLOT, None)
    if state is None:
        state = InfraState()
        object.__setattr__(infra, SLOT, state)
    return state


def bind_infras(obj: pydantic.BaseModel) -> None:
    for name, (method, exclude) in type(obj).__exca_infras__.items():  # type: ignore[attr-defined]
        infra = obj.__dict__.get(name)
        if infra is not None and getattr(infra, "_exca_is_infra", False):
            infra._bind(obj, name, method, exclude)


def _is_infra(value: tp.Any) -> bool:
    return isinstance(value, pydantic.BaseModel) and getattr(value, "_exca_is_infra", False)


def keep_class_defaults(obj: pydantic.BaseModel) -> None:
    """An infra given to a config (``infra={"folder": ...}``) keeps the fields set on the class
    default (``infra: TaskInfra = TaskInfra(version="2")``) that it does not set itself."""
    fields = type(obj).model_fields
    for name in type(obj).__exca_infras__:  # type: ignore[attr-defined]
        default: tp.Any = fields[name].default if name in fields else None
        infra: tp.Any = obj.__dict__.get(name)
        if not _is_infra(default) or not _is_infra(infra) or name not in obj.model_fields_set:
            continue
        missing = default.model_fields_set - infra.model_fields_set
        if missing:
            given = {key: infra.__dict__[key] for key in infra.model_fields_set}
            obj.__dict__[name] = type(infra).model_validate({**{k: default.__dict__[k] for k in missing}, **given})


def hook_owner(owner: type) -> None:
    """Bind infras to their config after validation and after unpickling."""
    if owner.__dict__.get("__exca_hooked__"):
        return
    post_init = owner.model_post_init  # type: ignore[attr-defined]

    def model_post_init(self: pydantic.BaseModel, context: tp.Any, /) -> None:
        post_init(self, context)
        keep_class_defaults(self)
        bind_infras(self)

    set_state = owner.__setstate__  # type: ignore[attr-defined]

    def __setstate__(self: pydantic.BaseModel, state: tp.Any) -> None:
        set_state(self, state)
        bind_infras(self)

    owner.model_post_init = model_post_init  # type: ignore[attr-defined]
    owner.__setstate__ = __setstate__  # type: ignore[attr-defined]
    owner.__exca_hooked__ = True  # type: ignore[attr-defined]


def _submodels(annotation: tp.Any, out: dict[type[pydantic.BaseModel], None]) -> None:
    """The model classes ``annotation`` reaches, each after the classes it contains (post-order):
    a parent rebuilt before its child would keep the child's old validator."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if annotation.__module__.split(".")[0] == "pydantic":  # BaseModel itself, RootModel...: pydantic's own
            return
        if annotation not in out:
            out[annotation] = None  # seen (a recursive model stops here) ...
            for info in annotation.model_fields.values():
                _submodels(info.annotation, out)
            del out[annotation]  # ... and placed after its children
            out[annotation] = None
        return
    for arg in tp.get_args(annotation):
        _submodels(arg, out)


def _owner_hints(owner: type, depth: int) -> dict[str, tp.Any]:
    """The owner's field annotations, resolved (a class being defined: its module and the frames
    of the functions it is defined in); unresolved forward references left as declared."""
    localns: dict[str, tp.Any] = {}
    frame: types.FrameType | None = sys._getframe(depth + 1)
    for _ in range(8):  # classes defined in a function: their names live in its frame
        if frame is None:
            break
        localns = {**frame.f_locals, **localns}
        frame = frame.f_back
    try:
        return tp.get_type_hints(owner, localns=localns)
    except Exception:
        return dict(getattr(owner, "__annotations__", {}))


def forbid_extra_in_submodels(owner: type) -> None:
    """Sub-configs without an explicit ``extra`` setting become strict too (as the owner): an
    unknown key anywhere in the config must fail validation, not vanish silently."""
    hints = _owner_hints(owner, 1)
    found: dict[type[pydantic.BaseModel], None] = {}  # children first
    for annotation in hints.values():
        _submodels(annotation, found)
    changed = False
    for cls in found:
        if "extra" not in cls.model_config and not getattr(cls, "_exca_is_infra", False):
            cls.model_config["extra"] = "forbid"
            changed = True
        if changed:  # a parent of a class made strict embeds the child's validator: rebuild it too
            cls.model_rebuild(force=True)


def check_excluded(owner: type, exclude: tp.Iterable[str]) -> None:
    """``exclude_from_cache_uid`` names fields of the owner, and a dotted path fields of its
    sub-configs: a typo, or a path into a list's items or a dict's keys (which the uid does not
    follow), would keep the value in the uid, silently."""
    names: set[str] = set()
    for cls in owner.__mro__:
        names.update(getattr(cls, "__annotations__", {}))
    unknown = [name for name in exclude if name.split(".")[0] not in names]
    if unknown:
        raise ValueError(f"exclude_from_cache_uid names no field of {owner.__name__}: {', '.join(map(repr, unknown))} "
                         f"(its fields: {', '.join(sorted(n for n in names if not n.startswith('_')))})")  # fmt: skip
    hints = _owner_hints(owner, 1)
    for path in exclude:
        _check_path(owner.__name__, path, hints)


def _check_path(owner: str, path: str, hints: dict[str, tp.Any]) -> None:
    from .cache.kinds import _is_single_literal, _model_members

    parts = path.split(".")
    annotations = [hints.get(parts[0])]
    for i, part in enumerate(parts[1:], 1):
        where = ".".join(parts[:i])
        if any(isinstance(a, str) for a in annotations):
            return  # an unresolved forward reference: not checked
        models: list[tp.Any] = [m for a in annotations for m in _model_members(a)]
        if not models:
            raise ValueError(
                f"exclude_from_cache_uid cannot follow {path!r} on {owner}: {where} is not a sub-config "
                "(a pydantic model), and the uid does not look into lists' items or dicts' keys. "
                f"Exclude {where!r} whole, or make it a model."
            )
        fields = {n: f.annotation for m in models for n, f in m.model_fields.items()}
        if part not in fields:
            raise ValueError(f"exclude_from_cache_uid {path!r} names no field of {owner}.{where} "
                             f"(its fields: {', '.join(sorted(fields))})")  # fmt: skip
        annotations = [m.model_fields[part].annotation for m in models if part in m.model_fields]
    if any(not isinstance(a, str) and _is_single_literal(a) for a in annotations):
        raise ValueError(f"exclude_from_cache_uid {path!r} on {owner} names a tag (a single-valued Literal, which "
                         "tells a union's options apart): the uid always keeps it, or two options would share a result")  # fmt: skip
