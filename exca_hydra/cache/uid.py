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

import collections.abc as abc
import datetime
import decimal
import enum
import hashlib
import json
import re
import sys
import types
import typing as tp
import uuid
from pathlib import PurePath

import pydantic
import yaml

__all__ = ["uid_config", "uid_string", "compute_uid", "UidError"]

MAX_PREFIX_CHARS = 120  # keeps the folder name far below the 255-byte limit
MAX_ITEM_CHARS = 40
HASH_CHARS = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@%-]")
_NO_DEFAULT: tp.Any = object()


class UidError(TypeError):
    """The config cannot be given a stable uid (e.g. a union of models without discriminator)."""


class _Tagged(dict):  # type: ignore[type-arg]
    """``{"!<kind>": canonical value}``: a value whose kind the annotation does not fix."""

    __slots__ = ()


class _Key(str):
    """``"!<kind>:<key>"``: a dict key whose kind the annotation does not fix (shown as <key>)."""

    __slots__ = ()


class _Unordered(list):  # type: ignore[type-arg]
    """A set in ``identity_config`` (sorted): compared with a stored list in any order."""

    __slots__ = ()


# uid.yaml holds them as the plain dict and string they are
yaml.SafeDumper.add_representer(_Tagged, yaml.representer.SafeRepresenter.represent_dict)
yaml.SafeDumper.add_representer(_Key, yaml.representer.SafeRepresenter.represent_str)
yaml.SafeDumper.add_representer(_Unordered, yaml.representer.SafeRepresenter.represent_list)

# Plain dict configs (DictConfig apps) have no types to mark a secret: the values of keys matching
# this (any case) enter the uid as a hash, like a pydantic.SecretStr. "token" alone or as an
# auth/access/api/hf/... token, not a tokenizer's eos_token or pad_token.
SECRET_KEY = re.compile(
    r"(password|passwd|secret|api_?key|access_?key|secret_?key|private_?key"
    r"|(^|auth|access|api|hf|refresh|bearer|session|github|gh)_?token)$",
    re.IGNORECASE,
)
_SECRETS = tuple(getattr(pydantic, name) for name in ("SecretStr", "SecretBytes", "Secret") if hasattr(pydantic, name))

# How a field's value is written, from its annotation (computed once per class):
#   None: the annotation fixes every kind inside, the printed form is enough (the uid of old);
#   _ANY: any kind, told apart; ("dict", keys_fixed, value_spec); ("seq", item_spec, the type
#   that needs no tag); ("tuple", item_specs).
_ANY: tp.Any = "any"
_Spec = tp.Any


class _Field(tp.NamedTuple):
    name: str
    default: tp.Any
    is_tag: bool
    spec: _Spec
    model_default: bool  # the default is a model: a value is compared with it as a uid


def _is_single_literal(annotation: tp.Any) -> bool:
    return tp.get_origin(annotation) is tp.Literal and len(tp.get_args(annotation)) == 1


def _model_members(annotation: tp.Any) -> list[type]:
    """Model classes of a union annotation (Annotated and Optional unwrapped)."""
    origin = tp.get_origin(annotation)
    if origin is tp.Annotated:
        return _model_members(tp.get_args(annotation)[0])
    if origin is tp.Union or origin is types.UnionType:
        out: list[type] = []
        for arg in tp.get_args(annotation):
            out.extend(_model_members(arg))
        return out
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return []


def _unwrap(annotation: tp.Any) -> tp.Any:
    while True:
        if tp.get_origin(annotation) is tp.Annotated:
            annotation = tp.get_args(annotation)[0]
        elif hasattr(annotation, "__supertype__"):  # NewType
            annotation = annotation.__supertype__
        else:
            return type(None) if annotation is None else annotation


def _members(annotation: tp.Any) -> list[tp.Any]:
    annotation = _unwrap(annotation)
    if tp.get_origin(annotation) in (tp.Union, types.UnionType):
        return [m for arg in tp.get_args(annotation) for m in _members(arg)]
    return [annotation]


_CATEGORIES: tuple[tuple[type, str], ...] = (  # what JSON makes of a kind (bool before int)
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (bytes, "str"), (PurePath, "str"),
    (datetime.date, "str"), (datetime.time, "str"), (datetime.timedelta, "str"),
    (decimal.Decimal, "str"), (uuid.UUID, "str"), (type(None), "null"),
    (list, "array"), (tuple, "array"), (set, "array"), (frozenset, "array"), (abc.Set, "array"),
    (abc.Sequence, "array"), (dict, "object"), (abc.Mapping, "object"), (pydantic.BaseModel, "object"),
)  # fmt: skip


def _categories(annotation: tp.Any) -> set[str]:
    """The JSON types the values of one (non-union) annotation print as; "any" if unknown."""
    origin = tp.get_origin(annotation) or annotation
    if origin is tp.Literal:
        return {c for value in tp.get_args(annotation) for c in _categories(type(value))}
    if isinstance(origin, type):
        if issubclass(origin, enum.Enum):
            return {c for member in origin for c in _categories(type(member.value))} or {"any"}
        for kind, category in _CATEGORIES:
            if issubclass(origin, kind):
                return {category}
    return {"any"}


def _told_apart(kinds: tp.Iterable[tp.Any]) -> bool:
    """Whether values of these kinds never print alike (each prints as JSON types of its own)."""
    seen: set[str] = set()
    for kind in kinds:
        categories = _categories(kind)
        if "any" in categories or categories & seen:
            return False
        seen |= categories
    return True


def _keys_fixed(annotation: tp.Any) -> bool:
    """Keys are written as text: their kind is fixed only by a single kind of key."""
    members = _members(annotation)
    if len(members) != 1 or members[0] in (tp.Any, object) or isinstance(members[0], tp.TypeVar):
        return False
    if tp.get_origin(members[0]) is tp.Literal:
        return len({type(v) for v in tp.get_args(members[0])}) == 1
    return True


_SEQUENCES: dict[tp.Any, tuple[type, bool]] = {  # origin -> (type of its values, the only one)
    list: (list, True), tuple: (tuple, True), set: (set, True), frozenset: (frozenset, True),
    abc.MutableSequence: (list, True), abc.Sequence: (list, False), abc.Collection: (list, False),
    abc.Set: (set, False), abc.MutableSet: (set, True),
}  # fmt: skip
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


def _spec(annotation: tp.Any) -> _Spec:
    """How values of this annotation are written (see _ANY)."""
    kinds = [m for m in _members(annotation) if m is not type(None)]
    if not kinds:
        return None
    if len(kinds) > 1:
        if all(_model_members(m) for m in kinds):
            return None  # models: told apart by their discriminator (checked by _plan)
        if all(_spec(m) is None for m in kinds) and _told_apart(kinds):
            return None
        return _ANY
    annotation = kinds[0]
    if annotation in (tp.Any, object) or isinstance(annotation, tp.TypeVar):
        return _ANY
    origin, args = tp.get_origin(annotation), tp.get_args(annotation)
    if origin is tp.Literal:
        return None if _told_apart({type(v) for v in args}) else _ANY
    origin = origin or annotation
    if isinstance(origin, type) and hasattr(origin, "__required_keys__"):  # a TypedDict
        hints = tp.get_type_hints(origin)
        return None if all(_spec(a) is None for a in hints.values()) else ("dict", True, _ANY)
    if isinstance(origin, type) and issubclass(origin, _MAPPINGS) and origin not in _SEQUENCES:
        keys_fixed = bool(args) and _keys_fixed(args[0])
        values = _spec(args[1]) if len(args) == 2 else _ANY
        return None if keys_fixed and values is None else ("dict", keys_fixed, values)
    if origin in _SEQUENCES:
        kind, only = _SEQUENCES[origin]
        if origin is tuple and args and args[-1] is not Ellipsis:
            specs = tuple(_spec(arg) for arg in args)
            return None if all(s is None for s in specs) else ("tuple", specs)
        items = _spec(args[0]) if args else _ANY
        return None if only and items is None else ("seq", items, kind)
    return None  # one kind, fixed


def _has_tag(cls: type[pydantic.BaseModel]) -> bool:
    return any(_is_single_literal(f.annotation) for f in cls.model_fields.values())


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
        if len(members) > 1 and info.discriminator is None and not all(map(_has_tag, members)):
            raise UidError(
                f"Field {cls.__name__}.{name} is a union of models without a discriminator, so "
                "two of its options could share a uid. Give each option a tag field and declare "
                f"it, e.g. {name}: A | B = pydantic.Field(..., discriminator='name') with "
                "name: Literal['a'] = 'a' on A."
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
        is_tag = _is_single_literal(info.annotation)
        fields.append(_Field(name, default, is_tag, spec, isinstance(default, pydantic.BaseModel) and not is_tag))
    excluded = getattr(cls, "_exclude_from_cls_uid", ())
    if callable(excluded):
        excluded = excluded()
    plan = (tuple(fields), frozenset(excluded), bool(getattr(cls, "_exca_is_infra", False)))
    _PLANS[cls] = plan
    return plan


def _same(value: tp.Any, default: tp.Any) -> bool:
    if type(value) is not type(default):
        return False
    return value == default or (type(value) is float and value != value and default != default)  # NaN


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
        return {"version": version} if defaults or version != "0" else {}
    values = model.__dict__
    out: dict[str, tp.Any] = {}
    for field in fields:
        name = field.name
        if name in cls_excluded:
            continue
        if exclude:
            path = prefix + name
            if path in exclude:
                continue
        value = values[name]
        if defaults:
            out[name] = _canon(value, exclude, prefix + name + "." if exclude else "", defaults)
            continue
        if not field.is_tag and _same(value, field.default):
            continue
        sub_prefix = prefix + name + "." if exclude else ""
        canon = _canon(value, exclude, sub_prefix) if field.spec is None else _enc(value, field.spec, exclude, sub_prefix)
        if field.model_default and type(field.default) is type(value):
            # equal to the field's own default (not to its class's defaults), e.g. an infra
            # whose version is its default's
            if canon == _default_canon(cls, field, exclude, sub_prefix):
                continue
        out[name] = canon
    return out


def _canon(value: tp.Any, exclude: frozenset[str] = frozenset(), prefix: str = "", defaults: bool = False) -> tp.Any:
    """JSON-ready canonical form of a value whose kind is fixed (models reduced to their uid
    fields); with ``defaults``, the form ``identity_config`` compares with config.yaml."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return _canon(value.value)
        return value
    if isinstance(value, pydantic.BaseModel):
        return _model_dict(value, exclude, prefix, defaults)
    if isinstance(value, dict):
        return {str(k): _canon(v, exclude, f"{prefix}{k}." if exclude else "", defaults) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v, defaults=defaults) for v in value]
    if isinstance(value, (set, frozenset)):
        items = sorted((_canon(v) for v in value), key=_dumps)
        return _Unordered(items) if defaults else items
    if isinstance(value, enum.Enum):
        return _canon(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, _SECRETS):
        return _secret(value.get_secret_value())
    try:
        from pydantic_core import to_jsonable_python

        return to_jsonable_python(value)
    except Exception as e:  # the value has no stable serialization
        raise UidError(f"Cannot compute a uid for value {value!r} of type {type(value)}") from e


def _secret(value: tp.Any, plain: bool = False) -> _Tagged:
    """A secret enters the uid as a hash: never in clear in a folder name or a file. ``plain``:
    the value of a secret key of a plain dict config (any kind: its JSON form is hashed)."""
    if plain:
        kind, data = "json", _dumps(_enc_any(value)).encode("utf8", "surrogatepass")
    elif isinstance(value, str):
        kind, data = "str", value.encode("utf8", "surrogatepass")
    elif isinstance(value, bytes):
        kind, data = "bytes", value
    else:
        kind, data = "json", _dumps(_enc_any(value)).encode("utf8", "surrogatepass")
    digest = hashlib.sha256(f"exca-hydra secret {kind}\0".encode() + data).hexdigest()
    return _Tagged({"!secret": digest})


def _kind(value: tp.Any) -> str:
    if isinstance(value, enum.Enum):
        return "enum." + type(value).__name__
    if isinstance(value, pydantic.BaseModel):
        return "model." + type(value).__name__
    if isinstance(value, PurePath):
        return "path"
    return "none" if value is None else type(value).__name__


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
    if spec[0] == "dict" and isinstance(value, dict):
        _, keys_fixed, values = spec
        return {
            (str(k) if keys_fixed else _key(k)): _enc(v, values, exclude, f"{prefix}{k}." if exclude else "")
            for k, v in value.items()
        }
    if spec[0] == "seq" and type(value) is spec[2]:
        items = [_enc(v, spec[1], frozenset(), "") for v in value]
        return sorted(items, key=_dumps) if spec[2] is set or spec[2] is frozenset else items
    if spec[0] == "tuple" and type(value) is tuple and len(value) == len(spec[1]):
        return [_enc(v, s, frozenset(), "") for v, s in zip(value, spec[1])]
    return _enc_any(value, exclude, prefix)  # another kind than the annotation's main one


def _enc_dict(value: dict[tp.Any, tp.Any], exclude: frozenset[str], prefix: str, secret_keys: bool) -> dict[str, tp.Any]:
    out: dict[str, tp.Any] = {}
    for k, v in value.items():
        if secret_keys and isinstance(k, str) and SECRET_KEY.search(k):
            out[_key(k)] = _secret(v, plain=True)
        else:
            out[_key(k)] = _enc_any(v, exclude, f"{prefix}{k}." if exclude else "", secret_keys)
    return out


def _enc_any(value: tp.Any, exclude: frozenset[str] = frozenset(), prefix: str = "", secret_keys: bool = False) -> tp.Any:
    """The uid form of a value of any kind: JSON's own kinds as they are, any other kind tagged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return _Tagged({"!" + _kind(value): _enc_any(value.value)})
        return value
    if type(value) is list:
        return [_enc_any(v, secret_keys=secret_keys) for v in value]
    if isinstance(value, dict):
        out = _enc_dict(value, exclude, prefix, secret_keys)
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


def _dumps(obj: tp.Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def uid_config(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> dict[str, tp.Any]:
    """Nested dict of what identifies ``obj`` (a pydantic model or a plain dict config)."""
    excluded = frozenset(exclude)
    try:
        if isinstance(obj, pydantic.BaseModel):
            return _model_dict(obj, excluded, "")
        if isinstance(obj, dict):  # a plain dict config: any kind anywhere, secret keys hashed
            return _enc_dict(obj, excluded, "", secret_keys=True)
    except ValueError as e:
        raise _long_int_error(obj, e) from e
    raise UidError(f"uid_config expects a pydantic model or a dict, got {type(obj)}")


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


def flatten(cfg: tp.Any, prefix: str = "") -> dict[str, tp.Any]:
    """Dotted keys of a nested dict: {"a": {"b": 1}} -> {"a.b": 1}."""
    if isinstance(cfg, dict) and cfg:
        out: dict[str, tp.Any] = {}
        for key, value in cfg.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: cfg} if prefix else {}


def _flatten(cfg: dict[str, tp.Any], prefix: str, out: list[str]) -> None:
    for key in sorted(cfg):
        value = cfg[key]
        kind = type(value)
        while kind is _Tagged:  # the readable prefix shows the value, without its kind
            tag, value = next(iter(value.items()))
            if tag == "!secret":
                value = "***"
            kind = type(value)
        if type(key) is _Key:
            key = key.split(":", 1)[1]
        if kind is dict and value:
            _flatten(value, f"{prefix}{key}.", out)
            continue
        if kind is str:
            text = value
        elif kind is int or kind is float:
            text = repr(value)  # what json.dumps writes, without its overhead
        else:
            text = _dumps(value)
        if len(text) > MAX_ITEM_CHARS:
            text = text[: MAX_ITEM_CHARS - 3] + "..."
        out.append(f"{prefix}{key}={text}")


def uid_string(cfg: dict[str, tp.Any]) -> str:
    """Folder-safe uid of a uid config: ``a.b=1,c=x-<hash>``; at most ~140 ASCII chars."""
    try:
        # surrogatepass: a lone surrogate (e.g. a non-UTF-8 byte of argv) hashes instead of
        # raising; every other string encodes exactly as before
        text = _dumps(cfg).encode("utf8", "surrogatepass")
    except ValueError as e:
        raise _long_int_error(cfg, e) from e
    digest = hashlib.blake2b(text, digest_size=HASH_CHARS // 2).hexdigest()
    items: list[str] = []
    if cfg:
        _flatten(cfg, "", items)
    prefix = _UNSAFE.sub("_", ",".join(items)) if items else "default"
    if len(prefix) > MAX_PREFIX_CHARS:
        prefix = prefix[:MAX_PREFIX_CHARS] + "..."
    if prefix[0] in ".-":  # never a hidden file, never an option
        prefix = "_" + prefix[1:]
    return f"{prefix}-{digest}"


def _long_int(value: tp.Any, path: str) -> str | None:
    """The dotted path of an int too long to print (Python's int-to-str limit), if any."""
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:
            return path
        return None
    if isinstance(value, pydantic.BaseModel):
        value = value.__dict__
    if isinstance(value, dict):
        for key, item in value.items():
            try:
                name = str(key)
            except ValueError:  # the key itself
                return path or "(top level)"
            found = _long_int(item, f"{path}.{name}" if path else name)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found = _long_int(item, path)
            if found is not None:
                return found
    return None


def _long_int_error(obj: tp.Any, error: ValueError) -> Exception:
    path = _long_int(obj, "")
    if path is None:
        return error
    return UidError(
        f"Cannot compute a uid: {path or 'the config'} holds an integer too long to print (over "
        f"Python's limit of {getattr(sys, 'get_int_max_str_digits', lambda: 4300)()} digits). Give "
        "it as a string, or raise the limit with sys.set_int_max_str_digits()."
    )


def compute_uid(obj: tp.Any, exclude: tp.Iterable[str] = ()) -> str:
    return uid_string(uid_config(obj, exclude))
