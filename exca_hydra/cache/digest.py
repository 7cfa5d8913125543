"""Per field, a digest of the full config with every value's kind, recorded in config.yaml.

Defaults are left out of the uid, so a cached entry is checked against the config.yaml it was
computed with: a class default that changed since must not be served.  config.yaml is JSON-like
text, which cannot show a default that became a look-alike of another kind (``1`` → ``1.0``,
``(1, 2)`` → ``[1, 2]``, ``"a"`` → a str Enum, a date → its ISO text, ``{1: x}`` → ``{"1": x}``).
The digests can: every value is written with its type's name, defaults included.

Job processes import this through the store: pydantic is imported only to compute digests.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import typing as tp

if tp.TYPE_CHECKING:
    import pydantic

PREFIX = "# kinds: "  # the first line of config.yaml (a YAML comment: readers skip it)
_PLAIN = (type(None), bool, int, float, str)


def field_digests(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> dict[str, str] | None:
    """Each field of a model (not excluded from its uid) to a short digest of its full value;
    None for a plain dict config (its uid holds every value, kinds included)."""
    import pydantic

    from .kinds import UidError, _dumps

    if not isinstance(obj, pydantic.BaseModel):
        return None
    excluded = frozenset(exclude)
    out = {}
    for name, value in _fields(obj, excluded, ""):
        try:
            form = _full(value, excluded, name + ".")
            out[name] = hashlib.sha256(_dumps(form).encode("utf8", "surrogatepass")).hexdigest()[:16]
        except (UidError, ValueError, TypeError, RecursionError):  # no stable form: not compared
            continue
    return out


def _fields(model: pydantic.BaseModel, exclude: frozenset[str], prefix: str) -> tp.Iterator[tuple[str, tp.Any]]:
    from .uid import _plan

    fields, cls_excluded, is_infra = _plan(type(model))
    if is_infra:  # only its version counts, as in the uid
        yield "version", model.__dict__["version"]
        return
    for field in fields:
        if field.name not in cls_excluded and prefix + field.name not in exclude:
            yield field.name, model.__dict__[field.name]
    yield from (model.__pydantic_extra__ or {}).items()


def _full(value: tp.Any, exclude: frozenset[str], prefix: str) -> tp.Any:
    import pydantic

    from .kinds import _dumps

    kind = type(value)
    if kind in _PLAIN:
        return value
    name = "!" + _type_name(kind)  # type: ignore[arg-type]
    if isinstance(value, pydantic.BaseModel):
        return {name: {k: _full(v, exclude, f"{prefix}{k}.") for k, v in _fields(value, exclude, prefix)}}
    if isinstance(value, dict):  # in any order, as the uid (an OrderedDict in its own)
        pairs = [[_full(k, frozenset(), ""), _full(v, frozenset(), "")] for k, v in value.items()]
        return {name: pairs if isinstance(value, collections.OrderedDict) else sorted(pairs, key=_dumps)}
    if isinstance(value, (set, frozenset)):
        return {name: sorted((_full(v, frozenset(), "") for v in value), key=_dumps)}
    if isinstance(value, (list, tuple)):
        return {name: [_full(v, frozenset(), "") for v in value]}
    from .uid import _enc_any  # a secret's hash, an enum's value, a date's text...

    return {name: _enc_any(value)}


@functools.lru_cache(maxsize=1024)
def _type_name(kind: type) -> str:
    """A type by its module and name (two classes named Config in two modules are two kinds); a
    script's by its import name, whether it runs as __main__ or is imported."""
    if kind.__module__ == "builtins":
        return kind.__name__
    from .layout import defining_file, import_name

    module = import_name(kind.__module__, defining_file(kind)) if kind.__module__ == "__main__" else kind.__module__
    return f"{module}.{kind.__qualname__}"


def with_digests(text: str, digests: dict[str, str] | None) -> str:
    """config.yaml's text with the digests as its first line."""
    if not digests:
        return text
    return PREFIX + json.dumps(digests, separators=(",", ":")) + "\n" + text


def stored_digests(text: str) -> dict[str, str]:
    """The digests config.yaml's text records ({} for an entry written before them)."""
    if not text.startswith(PREFIX):
        return {}
    try:
        data = json.loads(text[len(PREFIX) : text.index("\n")])
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def changed_fields(stored: dict[str, str], current: dict[str, str] | None) -> list[str]:
    """Fields both record whose digests differ (a field added or removed since is no change)."""
    if not current:
        return []
    return [name for name, digest in current.items() if name in stored and stored[name] != digest]
