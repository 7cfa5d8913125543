"""What kinds of value an annotation admits, and the markers the uid config uses to keep a value's
kind where the annotation does not fix it (``{"!<kind>": value}``, ``"!<kind>:<key>"``)."""

from __future__ import annotations

import collections.abc as abc
import datetime
import decimal
import enum
import functools
import json
import re
import sys
import types
import typing as tp
import unicodedata
import uuid
from pathlib import PurePath

import pydantic
import yaml


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


class _ModelDict(dict):  # type: ignore[type-arg]
    """A model's fields in ``identity_config``: a field missing from a stored config was added
    since (or removed: a field now missing), unlike a key of a dict value."""

    __slots__ = ()


# uid.yaml holds them as the plain dict and string they are
yaml.SafeDumper.add_representer(_Tagged, yaml.representer.SafeRepresenter.represent_dict)
yaml.SafeDumper.add_representer(_Key, yaml.representer.SafeRepresenter.represent_str)
yaml.SafeDumper.add_representer(_Unordered, yaml.representer.SafeRepresenter.represent_list)
yaml.SafeDumper.add_representer(_ModelDict, yaml.representer.SafeRepresenter.represent_dict)

# Plain dict configs (DictConfig apps) have no types to mark a secret: the values of keys matching
# this (any case, compatibility forms and every separator left out: api_key, api-key, API.KEY,
# "api_key\t"; a nested key with its parent's: API: {KEY: ...}, wandb: {key: ...}) enter the uid as
# a hash, like a pydantic.SecretStr, as do texts holding a URL's password (postgres://u:pw@host)
# or a query's (?password=, &token=), or a connection string's (password=...). "token" alone or
# as an auth/access/api/hf/... token, not a tokenizer's eos_token or pad_token, nor "tokens". A
# short qualifier may follow the name: api_key_prod, password2, token_v2, secret_value, apiKeys.
_QUALIFIER = r"(\d+|v\d+|prod|production|dev|test|staging|old|new|value|b64|base64|hash)?"
SECRET_KEY = re.compile(
    r"(passwords?|passwd|passphrase|secrets?|apikeys?|accesskeys?|secretkeys?|privatekeys?|credentials?|wandbkey)"
    + _QUALIFIER + r"$|(^|auth|access|api|hf|refresh|bearer|session|github|gh|secret|client|oauth|id)token" + _QUALIFIER + "$",
    re.IGNORECASE,
)
_NOT_ALNUM = re.compile(r"[\W_]+")
_TEXT_SECRET = re.compile(
    r"[a-z][a-z0-9+.-]*://[^\s:@/]*:[^\s@]+@"  # scheme://user:password@
    r"|[?&;#][\w.-]*(password|passwd|pwd|token|api_?key|secret|credential)[\w.-]*=[^&\s]"  # ?x_credential=
    r"|(^|[\s;])(password|pwd)\s*=\s*[^\s;]",  # host=h password=... / Server=...;Password=...
    re.IGNORECASE,
)


def _key_letters(key: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", key))


def is_secret(key: tp.Any, value: tp.Any, parent: tp.Any = None) -> bool:
    """A plain dict config's value that is a secret: its key (alone or after its parent's) says
    so, or it is a text holding a password."""
    if isinstance(key, str) and _secret_name(key, parent if isinstance(parent, str) else None):
        return True
    return is_secret_text(value)


@functools.lru_cache(maxsize=4096)  # a sweep's configs share their keys
def _secret_name(key: str, parent: str | None) -> bool:
    name = _key_letters(key)
    return bool(SECRET_KEY.search(name) or (parent is not None and SECRET_KEY.search(_key_letters(parent) + name)))


def is_secret_text(value: tp.Any) -> bool:
    # (every pattern needs an "@" or an "=": most texts are not searched at all)
    return isinstance(value, str) and ("@" in value or "=" in value) and _TEXT_SECRET.search(value) is not None


_SECRETS = tuple(getattr(pydantic, name) for name in ("SecretStr", "SecretBytes", "Secret") if hasattr(pydantic, name))

# How a field's value is written, from its annotation (computed once per class):
#   None: the annotation fixes every kind inside, the printed form is enough (the uid of old);
#   _ANY: any kind, told apart; ("dict", keys_fixed, value_spec); ("seq", item_spec, the type
#   that needs no tag); ("tuple", item_specs); ("model", classes): a model of one of these
#   classes as printed, an instance of a subclass tagged with its kind (it prints alike).
_ANY: tp.Any = "any"
_Spec = tp.Any


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


def _plain(spec: _Spec) -> bool:
    """Values of this spec print as the uid always printed them (a model of a declared class)."""
    return spec is None or (type(spec) is tuple and spec[0] == "model")


def _model_spec(kinds: tp.Iterable[tp.Any]) -> _Spec:
    classes = tuple(c for m in kinds for c in _model_members(m) if not getattr(c, "_exca_is_infra", False))
    return ("model", classes) if classes else None


def _spec(annotation: tp.Any) -> _Spec:
    """How values of this annotation are written (see _ANY)."""
    kinds = [m for m in _members(annotation) if m is not type(None)]
    if not kinds:
        return None
    if len(kinds) > 1:
        if all(_model_members(m) for m in kinds):
            return _model_spec(kinds)  # models: told apart by their discriminator (checked by _plan)
        if all(_plain(_spec(m)) for m in kinds) and _told_apart(kinds):
            return _model_spec(kinds)
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
        return None if all(_plain(_spec(a)) for a in hints.values()) else ("dict", True, _ANY)
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
    if isinstance(origin, type) and issubclass(origin, pydantic.BaseModel):
        return _model_spec([origin])
    return None  # one kind, fixed


def _kind(value: tp.Any) -> str:
    if isinstance(value, enum.Enum):
        return "enum." + type(value).__name__
    if isinstance(value, pydantic.BaseModel):
        return "model." + type(value).__name__
    if isinstance(value, PurePath):
        return "path"
    return "none" if value is None else type(value).__name__


def _dumps(obj: tp.Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
