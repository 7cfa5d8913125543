"""Freezing a config tree once its uid is known, so the uid can never go stale."""

from __future__ import annotations

import typing as tp
import weakref

import pydantic

_frozen: dict[int, weakref.ref[tp.Any]] = {}
_patched: set[type] = set()


class FrozenConfigError(RuntimeError):
    pass


def _frozen_error(self: tp.Any, name: str) -> FrozenConfigError:
    return FrozenConfigError(
        f"Cannot set {type(self).__name__}.{name}: this config was frozen when its uid was "
        "computed. Make a modified copy instead: obj.infra.clone_obj({'" + name + "': ...})"
    )


def _guarded_setattr(self: tp.Any, name: str, value: tp.Any) -> None:
    # module-level (not a closure) so that classes pickled by value stay picklable
    if id(self) in _frozen and not name.startswith("_"):
        raise _frozen_error(self, name)
    pydantic.BaseModel.__setattr__(self, name, value)


def _patch(cls: type) -> None:
    if cls not in _patched:
        cls.__setattr__ = _guarded_setattr  # type: ignore[method-assign,assignment]
        _patched.add(cls)


def _forget(key: int) -> tp.Callable[[tp.Any], None]:
    def forget(_: tp.Any) -> None:
        _frozen.pop(key, None)

    return forget


def freeze(obj: tp.Any) -> None:
    """Make every pydantic model in the tree of ``obj`` reject attribute assignment."""
    if isinstance(obj, pydantic.BaseModel):
        key = id(obj)
        if key in _frozen:
            return
        _patch(type(obj))
        try:
            _frozen[key] = weakref.ref(obj, _forget(key))
        except TypeError:  # no weakref slot: freezing is best effort
            return
        for value in obj.__dict__.values():
            freeze(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            freeze(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            freeze(item)


def is_frozen(obj: tp.Any) -> bool:
    return id(obj) in _frozen
