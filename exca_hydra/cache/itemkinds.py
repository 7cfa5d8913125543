"""How a MapInfra item is stored: JSON in the index (values that come back exactly), raw bytes
(numpy arrays whose dtype text names them whole, several of one kind stacked), or a pickle."""

from __future__ import annotations

import math
import typing as tp

_JSON_SCALARS = (str, int, float, bool, type(None))
_INT64 = 2**63


def is_jsonable(value: tp.Any, depth: int = 0) -> bool:
    """Values that come back from JSON exactly as they went in (no tuple, no subclass)."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        if kind is float:
            return math.isfinite(value)  # JSON has no NaN nor infinity: pickled
        return kind is not int or -_INT64 <= value < _INT64  # the parsers agree on 64-bit integers
    if depth > 20:
        return False
    if kind is list:
        return all(is_jsonable(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and is_jsonable(v, depth + 1) for k, v in value.items())
    return False


def array_kind(value: tp.Any) -> tp.Any:
    """numpy arrays whose bytes can be stored raw, else None (pickled): no object dtype, and a
    dtype its text names whole (a structured one's text, ``|V12``, loses its fields)."""
    np = _numpy()
    if np is None or type(value) not in (np.ndarray, np.memmap) or value.dtype.hasobject:
        return None
    if value.dtype.kind == "V" or np.dtype(value.dtype.str) != value.dtype:
        return None
    return value.dtype


def void(dtype: tp.Any) -> bool:
    """A raw void dtype in the index: a structured array stored by an older version, its fields lost."""
    return isinstance(dtype, str) and dtype[1:2] == "V"


def _numpy() -> tp.Any:
    import sys

    return sys.modules.get("numpy")  # an array implies numpy is imported: never import it here


def common_kind(values: tp.Sequence[tp.Any]) -> tuple[str, tuple[int, ...]] | None:
    counts: dict[tuple[str, tuple[int, ...]], int] = {}
    for value in values:
        dtype = array_kind(value)
        if dtype is not None:
            key = (dtype.str, value.shape)
            counts[key] = counts.get(key, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def same_kind(value: tp.Any, key: tuple[str, tuple[int, ...]]) -> bool:
    dtype = array_kind(value)
    return dtype is not None and dtype.str == key[0] and value.shape == key[1]


_ATOMIC = (str, int, float, bool, type(None))


def fresh(value: tp.Any) -> tp.Any:
    """A copy of a JSON-able value (its lists and dicts new, ~1 µs for a small dict)."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _ATOMIC else fresh(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else fresh(v) for v in value]
    return value
