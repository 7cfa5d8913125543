"""The app's pydantic model as its Hydra config: no YAML needed, YAML only overrides (issue 14).

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
before and uids of cached configs stay the same.  ``TaskInfra`` fields are ordinary sub-models:
their defaults are in the config (``infra.cluster=local`` needs no ``+``).

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

import contextlib
import copy
import logging
import re
import types
import typing as tp

import pydantic
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource
from omegaconf import DictConfig, ListConfig, OmegaConf

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
    from .uid import _same as same

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


# ----- generation -----
class App:
    """The generated config nodes of one model: the primary and every group option."""

    def __init__(self, model: type, primary: str) -> None:
        self.model = model
        self.primary = primary
        self.nodes: dict[str, dict[str, tp.Any]] = {}  # "config", "model/cnn", "model/opt/sgd" -> node
        self.groups: dict[str, Union] = {}  # "model", "model/opt" -> its union
        self.required: list[str] = []  # required groups of the primary (no default option)
        self.warnings: list[str] = []
        self._made: dict[str, DictConfig] = {}

    def group_dirs(self) -> set[str]:
        dirs = {""}
        for group in self.groups:
            parts = group.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return dirs

    def config(self, name: str) -> DictConfig:
        """A new config of a generated node (a clone of one made once: 20x cheaper)."""
        from .compose import clone

        made = self._made.get(name)
        if made is None:
            made = self._made[name] = OmegaConf.create(self.nodes[name])
        return clone(made)  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, tp.Any]:
        return {**self.__dict__, "_made": {}}  # made again where needed

    def options(self, group: str) -> list[str]:
        union = self.groups.get(group)
        return [tag for tag, _ in union.members] if union is not None else []


class _Builder:
    def __init__(self, model: type, primary: str) -> None:
        self.app = App(model, primary)
        self._pending: list[tuple[str, str, Union, tp.Any, tuple[type, ...]]] = []

    def build(self, help_mode: bool = False, selected: tp.Collection[str] = ()) -> App:
        content, before = self._content(self.app.model, None, "", (self.app.model,))
        if "hydra" in content:
            raise SchemaError(f"{self.app.model.__name__}: a root field named 'hydra' is Hydra's own config node")
        self.app.required = [group for group, option in before if option == MISSING]
        if help_mode:  # --help composes before any choice is made: leave required groups out
            before = [(g, o) for g, o in before if o != MISSING or g in selected]
            from .model_help import TEMPLATE

            content["hydra"] = {"help": {"template": TEMPLATE}}
        self.app.nodes[self.app.primary] = _node(before, content, primary=True)
        while self._pending:
            base, rel, union, instance, stack = self._pending.pop(0)
            self._options(_join(base, rel), union, instance, stack)
        return self.app

    def _options(self, group: str, union: Union, instance: tp.Any, stack: tuple[type, ...]) -> None:
        known = self.app.groups.get(group)
        if known is not None and known != union:
            self.app.warnings.append(f"'{group}': two different unions share this path; kept the first one's options")
            return
        self.app.groups[group] = union
        for tag, member in union.members:
            overlay = instance if isinstance(instance, member) and tag_of(instance, union) == tag else None
            content, before = self._content(member, overlay, "", (*stack, member), base=group)
            content[union.discriminator] = tag
            node = _node(before, content)
            path = f"{group}/{tag}"
            if path in self.app.nodes and self.app.nodes[path] != node:
                self.app.warnings.append(f"'{path}': two different defaults for this option; kept the first")
                continue
            self.app.nodes[path] = node

    def _content(
        self, cls: type, instance: tp.Any, rel: str, stack: tuple[type, ...], base: str = ""
    ) -> tuple[dict[str, tp.Any], list[tuple[str, tp.Any]]]:
        """The node of a model class (or of a default instance): its values, then the group
        selections of its unions (relative to ``base``, before ``_self_``)."""
        content: dict[str, tp.Any] = {}
        before: list[tuple[str, tp.Any]] = []
        for field in fields_of(cls):
            if field.key in _RESERVED:
                raise SchemaError(f"{cls.__name__}.{field.name}: a key named '{field.key}' is read by Hydra as a defaults list")
            value = instance.__dict__.get(field.name, _SKIP) if instance is not None else field.default
            if value is _SKIP:
                continue
            union = field.union
            if union is not None and not any(member in stack for _, member in union.members):
                group = rel + field.key
                if value is REQUIRED:
                    before.append((group, MISSING))
                elif value is None:  # no option (the key is absent: pydantic's None), model=cnn selects one
                    before.append((group, None))
                else:
                    tag = tag_of(value, union)
                    exact = tag is not None and (not isinstance(value, pydantic.BaseModel) or self._exact(value))
                    if tag is not None and exact:
                        before.append((group, tag))
                    # else: no default option; pydantic's default applies unless one is chosen
                self._pending.append((base, group, union, value if isinstance(value, pydantic.BaseModel) else None, stack))
                continue
            sub = field.sub
            if sub is not None and sub not in stack:
                if value is REQUIRED or (isinstance(value, pydantic.BaseModel) and self._exact(value)):
                    node_cls = sub if value is REQUIRED else type(value)
                    child, b = self._content(node_cls, None if value is REQUIRED else value, f"{rel}{field.key}/", (*stack, node_cls), base)
                    content[field.key] = child
                    before += b
                    continue
                if isinstance(value, pydantic.BaseModel):
                    continue  # a default that does not round-trip: left to pydantic
            if value is REQUIRED:
                content[field.key] = MISSING
                continue
            dumped = _dump(cls, field.name, value)
            if dumped is not _NOT_DUMPABLE:
                content[field.key] = dumped
        return content, before

    def _exact(self, instance: pydantic.BaseModel) -> bool:
        """Every leaf of a default instance round-trips (else it is left out, for pydantic)."""
        for field in fields_of(type(instance)):
            value = instance.__dict__.get(field.name, _SKIP)
            if value is _SKIP or value is None:
                continue
            if isinstance(value, pydantic.BaseModel) and (field.union is not None or field.sub is not None):
                if not self._exact(value):
                    return False
                continue
            if _dump(type(instance), field.name, value) is _NOT_DUMPABLE:
                return False
        return True


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if base else rel


def _node(
    before: list[tuple[str, tp.Any]], content: dict[str, tp.Any], primary: bool = False
) -> dict[str, tp.Any]:
    if not before and not primary:
        return content
    defaults: list[tp.Any] = [{g: o} for g, o in before] + ["_self_"]
    return {"defaults": defaults, **content}


_APPS: dict[tuple[tp.Any, ...], App] = {}


def generate(model: type, primary: str = "config", help_mode: bool = False, selected: tp.Collection[str] = ()) -> App:
    """The config nodes of ``model`` (cached per model and primary name)."""
    key = (model, primary, help_mode, frozenset(selected) if help_mode else None)
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = _Builder(model, primary).build(help_mode, selected)
        for warning in app.warnings:
            logger.warning("exca_hydra config of %s: %s", model.__name__, warning)
    return app


# ----- merging YAML on top -----
def _entry_key(entry: tp.Any) -> str | None:
    """The group an entry of a defaults list selects (keywords stripped), None for a config."""
    if not isinstance(entry, dict) or len(entry) != 1:
        return None
    key = str(next(iter(entry))).strip()
    for keyword in ("override ", "optional "):
        while key.startswith(keyword):
            key = key[len(keyword) :].strip()
    return key


def combine_defaults(generated: list[tp.Any], given: list[tp.Any] | None) -> list[tp.Any]:
    """The generated defaults list with a YAML file's list on top: the file's selection of a
    generated group replaces the generated one (``override`` dropped: one entry is left), the
    other generated selections come first, then the file's entries in its order (Hydra wants
    ``override`` entries last), ``_self_`` last unless the file placed it."""
    if given is None:
        return list(generated)
    keys = {_entry_key(e) for e in generated} - {None}
    out: list[tp.Any] = []
    used: set[str] = set()
    for entry in given:
        key = _entry_key(entry)
        if key is not None and key in keys:
            out.append({key: next(iter(entry.values()))})
            used.add(key)
        else:
            out.append(entry)
    first = [e for e in generated if e != "_self_" and _entry_key(e) not in used]
    return first + out + ([] if "_self_" in out else ["_self_"])


def merge_node(generated: dict[str, tp.Any], given: DictConfig) -> DictConfig:
    """``given`` (a YAML file's config) on top of a generated node.  Merged as plain data (a
    ``???`` or an interpolation of the file is a value like any other: it wins), then made into
    one config: about 1 ms, half of an OmegaConf merge."""
    data: tp.Any = OmegaConf.to_container(given, resolve=False)
    given_defaults = None
    if "defaults" in data:
        raw = data.pop("defaults")
        given_defaults = raw if isinstance(raw, list) else [raw]
    gen = dict(generated)
    gen_defaults = gen.pop("defaults", [])
    merged = _merge(gen, data)
    defaults = combine_defaults(gen_defaults, given_defaults)
    if defaults:
        merged = {"defaults": defaults, **merged}
    return OmegaConf.create(merged)


def _merge(base: dict[str, tp.Any], top: dict[str, tp.Any]) -> dict[str, tp.Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ----- the config source -----
class _Registration(tp.NamedTuple):
    app: App
    inner: str | None  # the wrapped primary config directory ("file:///...", "pkg://..."), if any


_SOURCES: dict[str, _Registration] = {}
_ACTIVE: list[App] = []  # the app of this process, while it runs


class ModelSource(ConfigSource):
    """The generated nodes of the active app, with the app's config directory (if any) on top."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        registration = _SOURCES.get(self.path)
        self.app: App | None = registration.app if registration else None
        self.inner: ConfigSource | None = None
        if registration is not None and registration.inner is not None:
            from hydra._internal.sources_registry import SourcesRegistry

            inner = registration.inner
            scheme = inner.split("://", 1)[0] if "://" in inner else "file"
            self.inner = SourcesRegistry.instance().resolve(scheme)(provider, inner)

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def __deepcopy__(self, memo: dict[int, tp.Any]) -> "ModelSource":
        new = copy.copy(self)  # the generated nodes are never changed: share them
        new.inner = copy.deepcopy(self.inner, memo)
        return new

    def _name(self, config_path: str) -> str:
        return config_path[: -len(".yaml")] if config_path.endswith(".yaml") else config_path

    def _generated(self, config_path: str) -> dict[str, tp.Any] | None:
        return None if self.app is None else self.app.nodes.get(self._name(config_path))

    def _inner_config(self, config_path: str) -> bool:
        return self.inner is not None and self.inner.is_config(config_path)

    def load_config(self, config_path: str) -> ConfigResult:
        generated = self._generated(config_path)
        if not self._inner_config(config_path):
            if generated is None:
                from hydra.plugins.config_source import ConfigLoadError

                raise ConfigLoadError(f"Config not found : {config_path}")
            return ConfigResult(
                config=self.app.config(self._name(config_path)),  # type: ignore[union-attr]
                path=self.full_path(),
                provider=self.provider,
                header={"package": None},
            )
        assert self.inner is not None
        result = self.inner.load_config(config_path)
        if result.header.get("package") is not None or not isinstance(result.config, DictConfig):
            return result  # the file places itself: served as written
        if generated is None or self._tag_mismatch(config_path, result.config):
            generated = self._known_tag_option(config_path, result.config)
        if generated is not None:
            result.config = merge_node(generated, result.config)
        return result

    def _tag_mismatch(self, config_path: str, cfg: DictConfig) -> bool:
        """An option file setting another tag than its name (``model/conv.yaml`` with ``name:
        transformer``): it is that tag's option, not the generated one of its name."""
        if self.app is None:
            return False
        group, _, option = self._name(config_path).rpartition("/")
        union = self.app.groups.get(group)
        if union is None or union.discriminator not in cfg or OmegaConf.is_missing(cfg, union.discriminator):
            return False
        return cfg.get(union.discriminator) != option

    def _known_tag_option(self, config_path: str, cfg: DictConfig) -> dict[str, tp.Any] | None:
        """A YAML-only option (``model/small.yaml``) whose tag is a known option's, and which does
        not extend a config itself: that option's generated node goes under it."""
        if self.app is None:
            return None
        group, _, _ = self._name(config_path).rpartition("/")
        union = self.app.groups.get(group)
        if union is None:
            return None
        tag = cfg.get(union.discriminator) if not OmegaConf.is_missing(cfg, union.discriminator) else None
        if not isinstance(tag, str) or union.member(tag) is None:
            return None
        defaults = cfg.get("defaults")
        if isinstance(defaults, ListConfig) and any(isinstance(e, str) and e != "_self_" for e in defaults):
            return None
        return self.app.nodes.get(f"{group}/{tag}")

    def available(self) -> bool:
        return True if self.inner is None else self.inner.available()

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        if self.app is not None and path in self.app.group_dirs():
            return True
        return self.inner is not None and self.inner.is_group(config_path)

    def is_config(self, config_path: str) -> bool:
        return self._generated(config_path) is not None or self._inner_config(config_path)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        found: set[str] = set()
        if self.inner is not None and self.inner.is_group(config_path):
            found.update(self.inner.list(config_path, results_filter))
        if self.app is not None:
            prefix = f"{path}/" if path else ""
            for name in self.app.nodes if results_filter in (None, ObjectType.CONFIG) else ():
                if name.startswith(prefix) and "/" not in name[len(prefix) :]:
                    found.add(name[len(prefix) :])
            for name in self.app.group_dirs() if results_filter in (None, ObjectType.GROUP) else ():
                if name and name.startswith(prefix) and "/" not in name[len(prefix) :]:
                    found.add(name[len(prefix) :])
        return sorted(found)


def search_path(search_path: tp.Any) -> None:
    """Called by the SearchPathPlugin: the active app's source takes the place of ``main`` (the
    app's config directory, which it wraps), or comes right after Hydra's own configs."""
    if not _ACTIVE:
        return
    app = _ACTIVE[-1]
    from hydra._internal.sources_registry import SourcesRegistry

    SourcesRegistry.instance().register(ModelSource)
    name = f"{app.model.__module__}.{app.model.__qualname__}"
    for element in search_path.get_path():
        if element.provider == "main":
            inner = element.path
            scheme = inner.split("://", 1)[0] if "://" in inner else "file"
            source = SourcesRegistry.instance().resolve(scheme)("main", inner)
            if not source.available():
                break  # Hydra reports the missing directory itself
            key = f"{name}@{inner}"
            _SOURCES[key] = _Registration(app, inner)
            element.path = f"{SCHEME}://{key}"
            return
    key = name
    _SOURCES[key] = _Registration(app, None)
    search_path.append("exca-model" if any(e.provider == "main" for e in search_path.get_path()) else "main", f"{SCHEME}://{key}", anchor="hydra")


@contextlib.contextmanager
def activated(app: App) -> tp.Iterator[App]:
    """``app``'s nodes in Hydra's search path while the block runs (tests, the Python API)."""
    _ACTIVE.append(app)
    try:
        yield app
    finally:
        _ACTIVE.remove(app)


def activate(app: App) -> None:
    """``app``'s nodes in Hydra's search path from now on (an app's ``run()``)."""
    _ACTIVE[:] = [app]


def _conf_source(task: tp.Any, config_path: str | None) -> tp.Any:
    """The app's config directory as Hydra finds it (a ConfigSource), or None."""
    from hydra._internal.sources_registry import SourcesRegistry
    from hydra._internal.utils import compute_search_path_dir, detect_calling_file_or_module_from_task_function

    try:
        from hydra.core.plugins import Plugins

        Plugins.instance()  # registers Hydra's config sources (done by Hydra later anyway)
        calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
        path = compute_search_path_dir(calling_file, calling_module, config_path)
        if path is None:
            return None
        scheme = path.split("://", 1)[0] if "://" in path else "file"
        source = SourcesRegistry.instance().resolve(scheme)("main", path)
        return source if source.available() else None
    except Exception:  # noqa: BLE001 - only used for suggestions
        return None


def start(task: tp.Any, model: type, primary: str, config_path: str | None, args: tp.Any, overrides: tp.Any) -> None:
    """What ``exca_hydra.main``'s ``run()`` does before Hydra: generate the model's config
    nodes, put them in Hydra's search path, and report a misspelt override (exit 1)."""
    import sys

    if args is not None and getattr(args, "config_name", None):
        primary = args.config_name
    if args is not None and getattr(args, "config_path", None):
        config_path = args.config_path
    help_mode = bool(args is not None and getattr(args, "help", False))
    selected = {o.key_or_group for o in overrides or ()}
    app = generate(model, primary, help_mode, selected)
    if help_mode:
        from .model_help import register

        register(model)
    activate(app)
    if overrides:
        from .suggest import check

        message = check(app, overrides, lambda: _conf_source(task, config_path))
        if message is not None:
            sys.stderr.write(message + "\n")
            sys.exit(1)
