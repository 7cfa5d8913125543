"""A result's preview, written beside it (``outcome.json``) so the cache tool shows results
without unpickling them: scalars as they are, a dict's leaves, else a short repr."""

from __future__ import annotations

import numbers
import reprlib
import typing as tp

PREVIEW_WIDTH, PREVIEW_KEYS = 80, 50


class _Repr(reprlib.Repr):
    def repr_instance(self, x: tp.Any, level: int) -> str:
        return short(x, repr)


_repr = _Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother = 2, PREVIEW_WIDTH, PREVIEW_WIDTH


def short(value: tp.Any, text: tp.Callable[[tp.Any], str]) -> str:
    """``text(value)`` cut to PREVIEW_WIDTH; ``<Type>`` when it raises."""
    try:
        out = text(value)
    except Exception:
        out = f"<{type(value).__name__}>"
    return out if len(out) <= PREVIEW_WIDTH else out[: PREVIEW_WIDTH - 3] + "..."


def _scalar(value: tp.Any) -> tp.Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return short(value, str)
    return short(value, _repr.repr)


def preview(value: tp.Any) -> tp.Any:
    """What ``outcome.json`` shows of a result: a scalar as it is (a string cut to 80 characters),
    a dict as its leaves under dotted keys (each a scalar or a short repr, at most 50), anything
    else as its short repr (``<Type>`` when its ``__repr__`` raises)."""
    if not isinstance(value, dict):
        return _scalar(value)
    out: dict[str, tp.Any] = {}
    _leaves(value, "", out)
    return out


def _leaves(node: dict[tp.Any, tp.Any], prefix: str, out: dict[str, tp.Any], depth: int = 0) -> None:
    for key, item in node.items():
        if len(out) >= PREVIEW_KEYS:
            out["..."] = "more keys"
            return
        if isinstance(item, dict) and item and depth < 4:
            _leaves(item, f"{prefix}{key}.", out, depth + 1)
        else:
            out[f"{prefix}{key}"] = _scalar(item)
