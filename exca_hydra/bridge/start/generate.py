"""Generate the config nodes of a model: the primary config and one option per union tag."""

from __future__ import annotations

import logging
import typing as tp

import pydantic
from omegaconf import DictConfig, OmegaConf

from ..launch.schema import _NOT_DUMPABLE, _RESERVED, _SKIP, MISSING, REQUIRED, SchemaError, Union, _dump, fields_of, tag_of

logger = logging.getLogger(__name__)

INFRA_KEYS = ("folder", "cluster", "mode", "version")  # an infra's keys always in the config



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
        from ..launch.compose import clone

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
    def __init__(self, model: type, primary: str, complete: bool = False) -> None:
        self.app = App(model, primary)
        self.complete = complete  # shell completion: every infra field is listed
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
            if sub is not None and getattr(sub, "_exca_is_infra", False):
                if isinstance(value, pydantic.BaseModel) and self._exact(value):
                    content[field.key] = self._infra_node(value)
                continue
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

    def _infra_node(self, infra: pydantic.BaseModel) -> dict[str, tp.Any]:
        """An infra's node: what is set on the field's default, and the settings changed from the
        command line most (``infra.folder=...``); its ~30 resources are set with ``infra.x=...`` (made
        ``++infra.x`` by model_start) or ``+infra.x=...``.
        Every node is cloned and converted for each job of a sweep: the whole infra would cost
        ~0.5 ms a job."""
        node: dict[str, tp.Any] = {}
        names = set(type(infra).model_fields) if self.complete else infra.model_fields_set
        for name in INFRA_KEYS + tuple(sorted(names - set(INFRA_KEYS))):
            dumped = _dump(type(infra), name, getattr(infra, name))
            if dumped is not _NOT_DUMPABLE:
                node[name] = dumped
        return node

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


def generate(
    model: type, primary: str = "config", help_mode: bool = False, selected: tp.Collection[str] = (), complete: bool = False
) -> App:
    """The config nodes of ``model`` (cached per model and primary name)."""
    key = (model, primary, help_mode, frozenset(selected) if help_mode else None, complete)
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = _Builder(model, primary, complete).build(help_mode, selected)
        for warning in app.warnings:
            logger.warning("exca_hydra config of %s: %s", model.__name__, warning)
    return app
