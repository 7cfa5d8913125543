"""The app's pydantic model read as Hydra config (the model side: unions, fields, leaves; the
generation is in generate.py, the config source in model_source.py). The design: no YAML needed, YAML only overrides (issue 14).

When an ``exca_hydra.main`` app starts (in its ``run()``, never at import), the task's model
is turned into Hydra config nodes:

* the primary config: every field with a default at that default (``seed: 3``,
  ``model: {hidden: [64, 64]}``), ``???`` for a field without one;
* a config group per discriminated-union field of models, at the field's path (``model``,
  ``data``), one option per tag (``model/cnn``) holding that member's defaults and its tag; the
  field's default (or ``default_factory``) selects the default option, a union without default
  is a required group (``model: ???``), a ``None`` default selects no option (``null``);
* a union inside an option is a nested group (``model/opt``) selected in that option's defaults
  list, so ``model=cnn model/opt=sgd model.opt.momentum=0.9`` works the Hydra way.

Leaves are stored as pydantic dumps them to JSON, and only if validating that dump gives back
the same value (``uid._same``): a default that validation would change (an ``int`` default of a
``float`` field, an invalid default) is left out of the config, so pydantic fills it in as
before and uids of cached configs stay the same.  A ``TaskInfra`` field's node holds ``folder``,
``cluster``, ``mode``, ``version`` and what the field's default sets (``infra.cluster=local``
needs no ``+``); its resources are set with ``+infra.gpus_per_node=8`` (every node of the config
is cloned and converted for each job of a sweep: all ~30 fields would cost ~0.5 ms a job).

The nodes are served by ``ModelSource`` (scheme ``exca-model``), which takes the place of the
app's primary config directory in Hydra's search path (``search_path()`` below, called by the
SearchPathPlugin of ``hydra_plugins/exca_hydra_plugin/model_search_path.py`` only while an
exca app is active in this process).  It wraps that directory: a YAML file with the name of a
generated node is merged *on top of* it (values, and its defaults list combined with the
generated one), a YAML-only option carrying a known tag (``name: cnn``) gets that option's
generated node under it, every other file is served as it is.  Nothing is put in the
ConfigStore, whose content every compose deep-copies and every remote job ships, and Hydra's
deprecated "automatic schema matching" of a file against a same-named store entry (a hard
error when the entry has a defaults list) cannot happen.
"""

from __future__ import annotations

import copy
import logging
import re
import types
import typing as tp

import pydantic

logger = logging.getLogger(__name__)

MISSING = "???"
SCHEME = "exca-model"
# option names Hydra's override grammar reads back as the same string (not a bool, null, number)
_SAFE_TAG = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_NOT_STRINGS = frozenset(("true", "false", "null", "nan", "inf", "infinity"))
_RESERVED = frozenset(("defaults",))  # read by Hydra as a defaults list at any level


class SchemaError(TypeError):
    """The model cannot be expressed as a Hydra config."""


class _Flag:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED: tp.Any = _Flag("REQUIRED")  # no default
_SKIP: tp.Any = _Flag("SKIP")  # a default pydantic computes from other fields: left to pydantic


class Union(tp.NamedTuple):
    """A discriminated union of models: the discriminator's key and the member of each tag."""

    discriminator: str
    members: tuple[tuple[str, type], ...]  # (tag, member class), in declaration order
    nullable: bool

    def member(self, tag: str) -> type | None:
        return dict(self.members).get(tag)


class FieldPlan(tp.NamedTuple):
    name: str  # the attribute
    key: str  # the config key (the alias pydantic validates, else the name)
    info: tp.Any  # pydantic FieldInfo
    union: Union | None
    sub: type | None  # a plain sub-model (X or Optional[X])
    default: tp.Any  # REQUIRED, _SKIP or the value


# ----- reading the model -----
def _is_model(obj: tp.Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)


def _strip_annotated(annotation: tp.Any) -> tuple[tp.Any, list[tp.Any]]:
    metadata: list[tp.Any] = []
    while tp.get_origin(annotation) is tp.Annotated:
        args = tp.get_args(annotation)
        annotation, metadata = args[0], [*metadata, *args[1:]]
    return annotation, metadata


def _union_args(annotation: tp.Any) -> tuple[tp.Any, ...] | None:
    if tp.get_origin(annotation) in (tp.Union, types.UnionType):
        return tp.get_args(annotation)
    return None


def _literal_tags(annotation: tp.Any) -> tuple[tp.Any, ...]:
    annotation, _ = _strip_annotated(annotation)
    if tp.get_origin(annotation) is tp.Literal:
        return tp.get_args(annotation)
    return ()


def _discriminator_key(discriminator: tp.Any) -> str | None:
    if isinstance(discriminator, str):
        return discriminator
    inner = getattr(discriminator, "discriminator", None)  # pydantic.Discriminator("name")
    return inner if isinstance(inner, str) else None


def union_of(annotation: tp.Any, discriminator: tp.Any = None) -> Union | None:
    """The discriminated union of models a field is typed with (``Optional`` and ``Annotated``
    unwrapped), or None.  Without a declared discriminator, a field that every member types as a
    ``Literal`` of strings is one (pydantic tells the members apart by it)."""
    key = _discriminator_key(discriminator)
    annotation, metadata = _strip_annotated(annotation)
    for item in metadata:
        key = key or _discriminator_key(getattr(item, "discriminator", None))
    args = _union_args(annotation)
    if args is None:
        return None
    nullable = type(None) in args
    members = [arg for arg in args if arg is not type(None)]
    if len(members) == 1:  # Optional[Annotated[A | B, Field(discriminator=...)]]
        inner = union_of(members[0], key)
        return None if inner is None else inner._replace(nullable=nullable or inner.nullable)
    if not all(_is_model(member) for member in members):
        return None
    if key is None:
        common = set.intersection(*(set(m.model_fields) for m in members))  # type: ignore[attr-defined]
        tagged = [name for name in sorted(common) if all(_literal_tags(m.model_fields[name].annotation) for m in members)]  # type: ignore[attr-defined]
        if len(tagged) != 1:
            return None
        key = tagged[0]
    pairs: list[tuple[str, type]] = []
    for member in members:
        info = member.model_fields.get(key)  # type: ignore[attr-defined]
        tags = _literal_tags(info.annotation) if info is not None else ()
        if not tags:
            return None
        for tag in tags:
            if not (isinstance(tag, str) and _SAFE_TAG.match(tag) and tag.lower() not in _NOT_STRINGS):
                logger.debug("Tag %r of %s is not a usable option name: no config group", tag, member)
                return None
            pairs.append((tag, member))
    if len({tag for tag, _ in pairs}) != len(pairs):
        return None
    return Union(key, tuple(pairs), nullable)


def plain_model(annotation: tp.Any) -> type | None:
    """The model class of a field typed ``X`` or ``Optional[X]`` (X a model), else None."""
    annotation, _ = _strip_annotated(annotation)
    args = _union_args(annotation)
    if args is not None:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) != 1:
            return None
        annotation, _ = _strip_annotated(rest[0])
    return annotation if _is_model(annotation) else None


def field_key(name: str, info: tp.Any) -> str:
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    return alias if isinstance(alias, str) else name


def _default(info: tp.Any) -> tp.Any:
    if info.is_required():
        return REQUIRED
    if info.default_factory is not None:
        if getattr(info, "default_factory_takes_data", False):
            return _SKIP
        try:
            return info.default_factory()
        except Exception:  # noqa: BLE001 - left to pydantic
            return _SKIP
    return info.default


_PLANS: dict[type, tuple[FieldPlan, ...]] = {}


def fields_of(cls: type) -> tuple[FieldPlan, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        items = []
        for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
            union = union_of(info.annotation, info.discriminator)
            sub = None if union is not None else plain_model(info.annotation)
            items.append(FieldPlan(name, field_key(name, info), info, union, sub, _default(info)))
        plan = _PLANS[cls] = tuple(items)
    return plan


def tag_of(value: tp.Any, union: Union) -> str | None:
    tag = value.get(union.discriminator) if isinstance(value, dict) else getattr(value, union.discriminator, None)
    return tag if isinstance(tag, str) and union.member(tag) is not None else None


# ----- leaves -----
def _same(value: tp.Any, default: tp.Any) -> bool:
    from ...cache.uid import _same as same

    return same(value, default)


def _blank(cls: tp.Any) -> tp.Any:
    """An instance without validation, defaults or ``model_post_init`` (only for the validator)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", {})
    object.__setattr__(obj, "__pydantic_fields_set__", set())
    object.__setattr__(obj, "__pydantic_extra__", {} if cls.model_config.get("extra") == "allow" else None)  # type: ignore[attr-defined]
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def _round_trips(cls: type, name: str, dumped: tp.Any, value: tp.Any) -> bool:
    """Validating the dumped value (as the config holds it) gives back ``value``."""
    try:
        out = cls.__pydantic_validator__.validate_assignment(_blank(cls), name, copy.deepcopy(dumped))  # type: ignore[attr-defined]
    except pydantic.ValidationError as e:
        own = [err for err in e.errors() if err["loc"][:1] == (name,) and not err["type"].startswith("frozen")]
        return not own  # another field's or a model validator's complaint: not about this value
    except Exception:  # noqa: BLE001 - a validator reading missing fields: assume it is fine
        return True
    validated = out.__dict__ if isinstance(out, pydantic.BaseModel) else (out[0] if isinstance(out, tuple) else {})
    return name not in validated or _same(validated[name], value)


_NOT_DUMPABLE: tp.Any = _Flag("NOT_DUMPABLE")


def _dump(cls: type, name: str, value: tp.Any) -> tp.Any:
    """The JSON form of a default as a config holds it (``${`` escaped), or _NOT_DUMPABLE when
    it is not JSON-able, OmegaConf cannot hold it, or validating it would not give it back."""
    import pydantic_core

    try:
        raw = pydantic_core.to_jsonable_python(value)
        escaped = _escape(raw)
    except Exception:  # noqa: BLE001
        return _NOT_DUMPABLE
    return escaped if _round_trips(cls, name, raw, value) else _NOT_DUMPABLE


def _escape(value: tp.Any) -> tp.Any:
    if isinstance(value, str):
        if value == MISSING or ("${" in value and "\\" in value):
            raise ValueError(value)
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(value)
        return {key: _escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape(item) for item in value]
    return value
