"""Values that would break a cache entry, refused when the uid is computed, naming the field: a
config nested deeper than Python's recursion allows, a value without a stable form.  (Text YAML
cannot hold, a lone surrogate, is escaped when written: records.yaml_safe.)"""

from __future__ import annotations

import typing as tp

from .kinds import UidError


class FieldUidError(UidError):
    """A UidError raised for a value inside a field: the message names the field's path."""

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(name, error)
        self.path = [name]
        self.error = error

    def __str__(self) -> str:
        return f"Cannot compute a uid for {'.'.join(self.path)}: {self.error}"


def in_field(name: tp.Any, error: UidError) -> FieldUidError:
    if isinstance(error, FieldUidError):
        error.path.insert(0, str(name))
        return error
    return FieldUidError(str(name), error)


def _children(value: tp.Any) -> tp.Iterable[tuple[str, tp.Any]]:
    if hasattr(type(value), "__pydantic_fields__"):
        value = value.__dict__
    if isinstance(value, dict):
        return ((str(k), v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return (("[]", v) for v in value)
    return ()


def deepest(obj: tp.Any) -> tuple[str, int]:
    """The dotted path to the most deeply nested value of ``obj`` and its depth (iterative: no
    recursion limit of its own)."""
    stack: list[tuple[tp.Any, int, tuple[str, ...]]] = [(obj, 0, ())]
    best: tuple[tuple[str, ...], int] = ((), 0)
    seen: set[int] = set()  # a value that holds itself: its first visit only
    while stack:
        value, depth, path = stack.pop()
        if depth > best[1]:
            best = (path, depth)
        if id(value) in seen:
            continue
        seen.add(id(value))
        for key, child in _children(value):
            stack.append((child, depth + 1, (*path, key) if len(path) < 3 else path))
    path, depth = best
    return (".".join(path) + ("..." if depth > len(path) else "")) or "(the config)", depth


def depth_error(obj: tp.Any) -> UidError:
    path, depth = deepest(obj)
    if depth < 100:  # not deep: a value that holds itself
        return UidError(f"Cannot compute a uid: a value under {path} holds itself (a cycle).")
    return UidError(
        f"Cannot compute a uid: {path} is nested {depth} levels deep, more than a uid (and the "
        "cache's files) can hold. Flatten that value, or leave it out of the uid "
        "(apply(exclude_from_cache_uid=...))."
    )
