"""The generated nodes in Hydra's search path: a ConfigSource that wraps the app's config
directory, with its YAML merged on top of the generated nodes."""

from __future__ import annotations

import contextlib
import copy
import logging
import typing as tp

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult, ConfigSource
from omegaconf import DictConfig, ListConfig, OmegaConf

from .generate import App
from ..launch.schema import SCHEME

logger = logging.getLogger(__name__)


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


EXCA_PLUGINS = ({"override hydra/launcher": "exca_local"}, {"override hydra/sweeper": "exca"})


def with_exca_plugins(config: DictConfig) -> DictConfig:
    """An app without YAML runs its sweeps through the exca launcher and sweeper (validated up
    front, cached) unless told otherwise (``hydra/launcher=basic``)."""
    defaults = list(config.get("defaults", ["_self_"]))
    at = defaults.index("_self_") if "_self_" in defaults else len(defaults)
    config["defaults"] = defaults[:at] + list(EXCA_PLUGINS) + defaults[at:]
    return config


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
            config = self.app.config(self._name(config_path))  # type: ignore[union-attr]
            if self._name(config_path) == self.app.primary:  # type: ignore[union-attr]
                config = with_exca_plugins(config)
            return ConfigResult(
                config=config,
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
            group = self._name(config_path).rpartition("/")[0] if self._name(config_path) != self.app.primary else ""  # type: ignore[union-attr]
            generated = self._switched(group, generated, result.config)
            result.config = merge_node(generated, result.config)
        return result

    def _switched(self, group: str, generated: dict[str, tp.Any], cfg: DictConfig) -> dict[str, tp.Any]:
        """The generated node with each union selection the file overrides by a tag
        (``opt: {name: sgd}`` where the default is adam) replaced by that tag's option: the old
        member's generated defaults must not be merged under the file's values."""
        defaults = generated.get("defaults")
        if self.app is None or not defaults:
            return generated
        out: list[tp.Any] = []
        for entry in defaults:
            key = _entry_key(entry)
            union = self.app.groups.get(f"{group}/{key}" if group else str(key)) if key else None
            node: tp.Any = cfg
            for part in (key or "").split("/") if union is not None else ():
                node = node.get(part) if isinstance(node, DictConfig) and not OmegaConf.is_missing(node, part) else None
            tag = node.get(union.discriminator) if isinstance(node, DictConfig) and union is not None and not OmegaConf.is_missing(node, union.discriminator) else None
            if union is not None and isinstance(tag, str) and tag != next(iter(entry.values())):
                if union.member(tag) is not None:
                    out.append({key: tag})
                continue  # an unknown tag: no option; pydantic names the field
            out.append(entry)
        return {**generated, "defaults": out}

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
