"""The uid of a config: one function used by the Python API, the launcher and the sweeper.

A uid is a readable prefix (the non-default values, dotted) plus a hash of the canonical
config.  Fields equal to their default are left out so that adding a field with a default keeps
old uids; discriminator tags (single-valued ``Literal`` fields) are always kept; infra fields are
left out except their ``version``.

Kinds of value.  JSON tells None, bools, ints, floats, strings, lists and dicts apart; other kinds
print like one of those (a tuple like a list, a date or a Path like a string, the key 1 like "1").
Where a field's annotation fixes the kind (``p: Path``, ``d: dict[int, str]``) the printed form is
enough and the uid is as it always was; where it admits several kinds that print alike
(``tp.Any``, ``Path | str``, ``tuple[int, int] | list[int]``, a plain dict config), such a value
is written ``{"!<kind>": value}`` and such a key ``"!<kind>:<key>"`` (a dict or a key that could be
mistaken for one is escaped the same way), so the hash tells them apart; the readable prefix
shows the value alone, as before.  Secrets (``pydantic.SecretStr``...) enter as a hash.
"""

from __future__ import annotations

import datetime
import enum
import functools
import hashlib
import typing as tp
from pathlib import PurePath

import pydantic

from .kinds import (
    _ANY,
    _SECRETS,
    SECRET_KEY,
    UidError,
    _dumps,
    _is_single_literal,
    _Key,
    _kind,
    _long_int_error,
    is_secret,
    is_secret_text,
    _model_members,
    _ModelDict,
    _spec,
    _Spec,
    _Tagged,
    _Unordered,
)
from .same import same_value
from .uid_checks import depth_error, in_field
from .uid_name import flatten, uid_string

__all__ = ["uid_config", "uid_string", "compute_uid", "flatten", "UidError", "SECRET_KEY"]

_NO_DEFAULT: tp.Any = object()
SECRET_COST = 2**14  # scrypt's N


class _Field(tp.NamedTuple):
    name: str
    default: tp.Any
    is_tag: bool
    spec: _Spec
    model_default: bool  # the default is a model: a value is compared with it as a uid
    infra_default: bool  # an infra: only its version counts, compared as a uid (cheaper)


def _tags(cls: type[pydantic.BaseModel]) -> dict[str, tp.Any]:
    return {n: tp.get_args(f.annotation)[0] for n, f in cls.model_fields.items() if _is_single_literal(f.annotation)}


def _tag_apart(one: type[pydantic.BaseModel], other: type[pydantic.BaseModel]) -> bool:
    """Whether every uid of ``one`` differs from every uid of ``other`` by a tag (always kept):
    a tag of one that the other has not as a field, or has as a tag of another value."""
    for a, b in ((one, other), (other, one)):
        tags_b = _tags(b)
        for name, value in _tags(a).items():
            # compared as the uid writes them: a str Enum's member is its value's text
            if name not in b.model_fields or (name in tags_b and not same_value(_canon(tags_b[name]), _canon(value))):
                return True
    return False


def _nested_tag_clash(spec: _Spec) -> tuple[type, type] | None:
    """Two tagged options of a union inside a field (``list[A | B]``) whose tags are alike (an
    untagged option may be told apart by a callable discriminator: left to the field's check)."""
    if type(spec) is not tuple:
        return None
    if spec[0] == "model":
        tagged = [c for c in spec[1] if _tags(c)]
        return _untold_pair(tagged) if len(tagged) > 1 else None
    parts = spec[2:] if spec[0] == "dict" else spec[1] if spec[0] == "tuple" else spec[1:2]
    for part in parts:
        found = _nested_tag_clash(part)
        if found is not None:
            return found
    return None


def _untold_pair(members: list[type]) -> tuple[type, type] | None:
    """Two members of a union without discriminator that could share a uid, if any."""
    for i, one in enumerate(members):
        for other in members[i + 1 :]:
            if one is not other and not _tag_apart(one, other):
                return one, other
    return None


_PLANS: dict[type, tuple[tuple[_Field, ...], frozenset[str], bool]] = {}


def _plan(cls: type[pydantic.BaseModel]) -> tuple[tuple[_Field, ...], frozenset[str], bool]:
    """Per class, once: the fields with their defaults, the fields excluded from the uid, and
    whether it is an infra (only its version counts)."""
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    fields = []
    for name, info in cls.model_fields.items():
        members = _model_members(info.annotation)
        pair = _untold_pair(members) if len(members) > 1 and info.discriminator is None else None
        if pair is not None:
            raise UidError(
                f"Field {cls.__name__}.{name} is a union of models without a discriminator, and "
                f"{pair[0].__name__} and {pair[1].__name__} have no tag value telling them apart, so "
                "two of its options could share a uid. Give each option a tag field of its own "
                f"value and declare it, e.g. {name}: A | B = pydantic.Field(..., discriminator='name') "
                "with name: Literal['a'] = 'a' on A."
            )
        if info.default_factory is not None:
            takes_data = getattr(info, "default_factory_takes_data", False)
            default = _NO_DEFAULT if takes_data else info.default_factory()  # type: ignore[call-arg]
        elif info.is_required():
            default = _NO_DEFAULT
        else:
            default = info.default
        try:
            spec = _spec(info.annotation)
        except Exception:  # an annotation this does not understand: its values as printed
            spec = None
        nested = _nested_tag_clash(spec)
        if nested is not None:
            raise UidError(
                f"Field {cls.__name__}.{name} holds a union of models whose options {nested[0].__name__} "
                f"and {nested[1].__name__} share their tag values, so two of its values could share a "
                "uid. Give each option a tag value of its own."
            )
        is_tag = _is_single_literal(info.annotation)
        model_default = isinstance(default, pydantic.BaseModel) and not is_tag
        infra_default = model_default and bool(getattr(type(default), "_exca_is_infra", False))
        fields.append(_Field(name, default, is_tag, spec, model_default, infra_default))
    excluded = getattr(cls, "_exclude_from_cls_uid", ())
    if callable(excluded):
        excluded = excluded()
    plan = (tuple(fields), frozenset(excluded), bool(getattr(cls, "_exca_is_infra", False)))
    _PLANS[cls] = plan
    return plan


def _same(value: tp.Any, default: tp.Any) -> bool:
    """Equal to the default means the same value of the same kind: ``[True]`` is not ``[1]``."""
    return same_value(value, default)


_DEFAULT_CANON: dict[tuple[type, str], tp.Any] = {}


def _default_canon(cls: type, field: _Field, exclude: frozenset[str], prefix: str) -> tp.Any:
    """The uid form of a field's default (a model), to compare a value of that field with."""
    if exclude:
        return _enc(field.default, field.spec, exclude, prefix)
    key = (cls, field.name)
    if key not in _DEFAULT_CANON:
        _DEFAULT_CANON[key] = _enc(field.default, field.spec, exclude, "")
    return _DEFAULT_CANON[key]


def _model_dict(
    model: pydantic.BaseModel, exclude: frozenset[str], prefix: str, defaults: bool = False
) -> dict[str, tp.Any]:
    cls = type(model)
    fields, cls_excluded, is_infra = _plan(cls)
    if is_infra:
        version = model.__dict__["version"]
        if defaults:
            return _ModelDict(version=version)
        return {"version": version} if version != "0" else {}
    values = model.__dict__
    out: dict[str, tp.Any] = _ModelDict() if defaults else {}
    for field in fields:
        name = field.name
        if name in cls_excluded:
            continue
        if exclude:
            path = prefix + name
            if path in exclude:
                continue
        value = values[name]
        try:
            if defaults:
                out[name] = _canon(value, exclude, prefix + name + "." if exclude else "", defaults)
                continue
            if not field.is_tag and not field.infra_default and _same(value, field.default):
                continue
            sub_prefix = prefix + name + "." if exclude else ""
            canon = _canon(value, exclude, sub_prefix) if field.spec is None else _enc(value, field.spec, exclude, sub_prefix)
        except UidError as e:
            raise in_field(name, e) from None
        if field.model_default and type(field.default) is type(value):
            # equal to the field's own default (not to its class's defaults), e.g. an infra
            # whose version is its default's
            if same_value(canon, _default_canon(cls, field, exclude, sub_prefix)):
                continue
        out[name] = canon
    extra = model.__pydantic_extra__  # extra="allow": the extras are values of the config too
    if extra:
        for key, value in extra.items():
            try:
                out[key] = _canon(value, defaults=True) if defaults else _enc_any(value)
            except UidError as e:
                raise in_field(key, e) from None
    return out


def _canon(value: tp.Any, exclude: frozenset[str] = frozenset(), prefix: str = "", defaults: bool = False) -> tp.Any:
    """JSON-ready canonical form of a value whose kind is fixed (models reduced to their uid
    fields); with ``defaults``, the form ``identity_config`` compares with config.yaml."""
    if isinstance(value, str) and is_secret_text(value):  # a URL's password... (config.yaml masks it)
        return _secret(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return _canon(value.value)
        return value
    if isinstance(value, enum.Enum):  # a member whose value is a tuple, a list...: its kind kept
        return _canon(value.value) if value.value is None or type(value.value) in (bool, int, float, str) else _enc_any(value.value)
    if isinstance(value, pydantic.BaseModel):
        return _model_dict(value, exclude, prefix, defaults)
    if isinstance(value, dict):
        text = _json_key if defaults else _key_text
        out = {}
        for k, v in value.items():
            try:
                out[text(k)] = _canon(v, exclude, f"{prefix}{k}." if exclude else "", defaults)
            except UidError as e:
                raise in_field(k, e) from None
        return out
    if isinstance(value, (list, tuple)):
        return [_canon(v, defaults=defaults) for v in value]
    if isinstance(value, (set, frozenset)):
        items = sorted((_canon(v) for v in value), key=_dumps)
        return _Unordered(items) if defaults else items
    if isinstance(value, PurePath):
        return str(value)
    nanosecond = getattr(value, "nanosecond", 0)  # pandas' Timestamp: its text stops at microseconds
    if isinstance(value, datetime.datetime) and isinstance(nanosecond, int) and nanosecond:
        return f"{value.isoformat()}[{type(value).__name__}, ns={nanosecond}]"
    if isinstance(value, (datetime.datetime, datetime.time)) and (_zone(value) or value.fold):
        # two zones of one offset today (Europe/Paris, Africa/Lagos) are two values: the zone's name kept
        return value.isoformat() + (f"[{_zone(value)}]" if _zone(value) else "") + ("[fold=1]" if value.fold else "")
    if isinstance(value, _SECRETS):
        return _secret(value.get_secret_value())
    try:
        from pydantic_core import to_jsonable_python

        text = to_jsonable_python(value)
    except Exception as e:  # the value has no stable serialization
        raise UidError(f"the value {str(repr(value))[:80]} ({type(value).__name__}) has no stable form: {e}") from e
    if isinstance(text, str) and is_secret_text(text):  # pydantic's PostgresDsn...
        return _secret(text)
    return text


def _zone(value: datetime.datetime | datetime.time) -> str | None:
    """A time zone that is not a fixed offset (ZoneInfo('Europe/Paris')...), by its name."""
    tz = value.tzinfo
    if tz is None or type(tz) is datetime.timezone:
        return None
    return str(getattr(tz, "key", None) or repr(tz))


def _key_text(key: tp.Any) -> str:
    """A key whose kind is fixed, as text: ``str(key)`` as always, but a set's elements in a
    fixed order (``str`` follows the hash seed: another uid in every process)."""
    if isinstance(key, (set, frozenset)) and len(key) > 1:
        return f"{type(key).__name__}({{{', '.join(sorted(map(repr, key)))}}})"
    if isinstance(key, tuple) and any(isinstance(k, (set, frozenset, tuple)) for k in key):
        return "(" + ", ".join(_key_text(k) if isinstance(k, (set, frozenset, tuple)) else repr(k) for k in key) + ("," if len(key) == 1 else "") + ")"
    return str(key)


def _json_key(key: tp.Any) -> str:
    """A key as config.yaml holds it (pydantic's JSON form: ``true``, an enum's value)."""
    if type(key) is str:
        return key
    try:
        from pydantic_core import to_jsonable_python

        return str(next(iter(to_jsonable_python({key: None}))))
    except Exception:  # a key pydantic does not serialize (a frozenset)
        return _key_text(key)


def _secret(value: tp.Any, plain: bool = False) -> _Tagged:
    """A secret enters the uid as a hash: never in clear in a folder name or a file. ``plain``:
    the value of a secret key of a plain dict config (any kind: its JSON form is hashed)."""
    if plain:  # (a text as its JSON form: _enc_any would hash it again)
        kind, data = "json", _dumps(value if isinstance(value, str) else _enc_any(value)).encode("utf8", "surrogatepass")
    elif isinstance(value, str):
        kind, data = "str", value.encode("utf8", "surrogatepass")
    elif isinstance(value, bytes):
        kind, data = "bytes", value
    else:
        kind, data = "json", _dumps(_enc_any(value)).encode("utf8", "surrogatepass")
    return _Tagged({"!secret": _slow_hash(kind, data)})


@functools.lru_cache(maxsize=256)  # a sweep's jobs share their secrets: one derivation each
def _slow_hash(kind: str, data: bytes) -> str:
    """uid.yaml and the folder's hash can be checked against guesses of a secret: scrypt makes
    each guess cost ~50 ms and 16 MiB (sha256: nanoseconds). Not salted per cache, so that a
    config has one uid in every cache and a shared cache works without a shared key."""
    salt = f"exca-hydra secret v2 {kind}".encode()
    return hashlib.scrypt(data, salt=salt, n=SECRET_COST, r=8, p=1, maxmem=64 << 20, dklen=32).hex()


def _key(key: tp.Any) -> str:
    """A dict key where keys of several kinds could print alike."""
    if isinstance(key, str) and not isinstance(key, enum.Enum):
        return _Key("!str:" + key) if key.startswith("!") else key
    # str(key) as before (a set's order is not stable: written in its canonical order)
    text = _dumps(next(iter(_enc_any(key).values()))) if isinstance(key, (tuple, frozenset)) else str(key)
    return _Key(f"!{_kind(key)}:{text}")


def _enc(value: tp.Any, spec: _Spec, exclude: frozenset[str], prefix: str) -> tp.Any:
    """The uid form of a value written as its annotation's spec says (see _ANY)."""
    if spec is None:
        return _canon(value, exclude, prefix)
    if spec is _ANY:
        return _enc_any(value, exclude, prefix)
    if spec[0] == "model":  # a subclass of the declared class prints alike: its kind is kept
        if isinstance(value, pydantic.BaseModel) and type(value) not in spec[1] and not _plan(type(value))[2]:
            return _enc_any(value, exclude, prefix)
        return _canon(value, exclude, prefix)
    if spec[0] == "dict" and isinstance(value, dict):
        _, keys_fixed, values = spec
        out = {}
        for k, v in value.items():
            try:
                out[_key_text(k) if keys_fixed else _key(k)] = _enc(v, values, exclude, f"{prefix}{k}." if exclude else "")
            except UidError as e:
                raise in_field(k, e) from None
        return out
    if spec[0] == "seq" and type(value) is spec[2]:
        items = [_enc(v, spec[1], frozenset(), "") for v in value]
        return sorted(items, key=_dumps) if spec[2] is set or spec[2] is frozenset else items
    if spec[0] == "tuple" and type(value) is tuple and len(value) == len(spec[1]):
        return [_enc(v, s, frozenset(), "") for v, s in zip(value, spec[1])]
    return _enc_any(value, exclude, prefix)  # another kind than the annotation's main one


def _enc_dict(value: dict[tp.Any, tp.Any], exclude: frozenset[str], prefix: str, secret_keys: bool,
              parent: tp.Any = None) -> dict[str, tp.Any]:  # fmt: skip
    out: dict[str, tp.Any] = {}
    for k, v in value.items():
        try:
            if secret_keys and is_secret(k, v, parent):
                out[_key(k)] = _secret(v, plain=True)
            else:
                out[_key(k)] = _enc_any(v, exclude, f"{prefix}{k}." if exclude else "", secret_keys, parent=k)
        except UidError as e:
            raise in_field(k, e) from None
    return out


def _ordered(value: dict[tp.Any, tp.Any]) -> bool:
    """A mapping whose order is part of its value (OrderedDict's ``==`` compares it)."""
    import collections

    return isinstance(value, collections.OrderedDict)


def _enc_any(value: tp.Any, exclude: frozenset[str] = frozenset(), prefix: str = "", secret_keys: bool = False,
             parent: tp.Any = None) -> tp.Any:  # fmt: skip
    """The uid form of a value of any kind: JSON's own kinds as they are, any other kind tagged
    (``secret_keys``: a plain dict config's, whose secrets are found by their keys and texts)."""
    if isinstance(value, str) and is_secret_text(value):  # (a URL with a password, in a list, say)
        return _secret(value, plain=True)
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return _Tagged({"!" + _kind(value): _enc_any(value.value)})
        return value
    if type(value) is list:  # (API: [{KEY: ...}]: the items' keys read after the list's)
        return [_enc_any(v, secret_keys=secret_keys, parent=parent) for v in value]
    if isinstance(value, dict):
        out = _enc_dict(value, exclude, prefix, secret_keys, parent)
        if type(value) is not dict:  # an OrderedDict, a defaultdict...: another kind (in its order)
            return _Tagged({"!" + _kind(value): [[k, v] for k, v in out.items()] if _ordered(value) else out})
        if len(out) == 1 and next(iter(out)).startswith("!"):  # would read as a tag
            return _Tagged({"!dict": out})
        return out
    if isinstance(value, _SECRETS):
        return _secret(value.get_secret_value())
    if isinstance(value, pydantic.BaseModel):
        payload: tp.Any = _model_dict(value, exclude, prefix)
    elif isinstance(value, (list, tuple)):
        payload = [_enc_any(v, secret_keys=secret_keys) for v in value]
    elif isinstance(value, (set, frozenset)):
        payload = sorted((_enc_any(v, secret_keys=secret_keys) for v in value), key=_dumps)
    else:
        payload = _canon(value)
    return _Tagged({"!" + _kind(value): payload})


def uid_config(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> dict[str, tp.Any]:
    """Nested dict of what identifies ``obj`` (a pydantic model or a plain dict config)."""
    excluded = frozenset(exclude)
    try:
        if isinstance(obj, pydantic.BaseModel):
            out = _model_dict(obj, excluded, "")
        elif isinstance(obj, dict):  # a plain dict config: any kind anywhere, secret keys hashed
            out = _enc_dict(obj, excluded, "", secret_keys=True)
        else:
            raise UidError(f"uid_config expects a pydantic model or a dict, got {type(obj)}")
    except ValueError as e:
        raise _long_int_error(obj, e) from e
    except RecursionError:
        raise depth_error(obj) from None
    return out


def identity_config(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> dict[str, tp.Any]:
    """Like ``uid_config`` but with every default, as config.yaml records them (no kinds, sets
    unordered): what a cached result was computed with. Compared with the stored config.yaml,
    it reveals a class default that changed."""
    if isinstance(obj, pydantic.BaseModel):
        try:
            return _model_dict(obj, frozenset(exclude), "", defaults=True)
        except ValueError as e:
            raise _long_int_error(obj, e) from e
    return uid_config(obj, exclude)


def compute_uid(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> str:
    return uid_string(uid_config(obj, exclude))
