"""Equality that keeps the kind: ``True``, ``1`` and ``1.0`` are equal under ``==`` but are not the
same value of a config, nor are ``-0.0`` and ``0.0``, ``(1,)`` and ``[1]``, ``{"a": True}`` and
``{"a": 1}``, or a model and its subclass with the same fields, or ``Decimal("1.00")`` and ``Decimal("1")``.  Used wherever a value is compared
with a default or a stored config: under ``==`` two configs that differ would share a result.

No import beyond the standard library: job processes import this through the store.
"""

from __future__ import annotations

import math
import typing as tp


def _float_same(a: float, b: float) -> bool:
    if a != a:  # NaN equals NaN: a NaN default is the same value
        return b != b
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _keyed(mapping: tp.Any) -> dict[tp.Any, tp.Any]:
    """Each key mapped to itself: looking up an ``==``-equal key returns the stored one's kind."""
    return {k: k for k in mapping}


def same_value(a: tp.Any, b: tp.Any) -> bool:
    """``a == b`` with the same kind everywhere inside (types compared exactly; a NaN equals a
    NaN, inside a container only as the same object, as ``==`` has it)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return _float_same(a, b)
    if kind in (str, int, bool, bytes) or a is None:
        return bool(a == b)
    try:  # C speed, and most values differ from their default (a NaN inside: not the same, as ever)
        if not (a == b):
            return False
    except Exception:  # e.g. numpy arrays: not comparable as one bool, so not the same
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        keys = _keyed(b)
        for key, value in a.items():
            if key not in keys or not same_value(key, keys[key]) or not same_value(value, b[key]):
                return False
        return True
    if isinstance(a, (set, frozenset)):
        if len(a) != len(b):
            return False
        keys = _keyed(b)
        return all(x in keys and same_value(x, keys[x]) for x in a)
    if getattr(kind, "__pydantic_fields__", None) is not None:  # a pydantic model
        return same_value(a.__dict__, b.__dict__)
    if isinstance(a, float):  # a float subclass
        return _float_same(float(a), float(b))
    try:  # equal under == and of one type, yet other values: Decimal("1.00") and Decimal("1"),
        shown = repr(a)  # a time in two time zones
        return shown == repr(b) or " at 0x" in shown  # (an object without a repr of its value: ==)
    except Exception:
        return True
