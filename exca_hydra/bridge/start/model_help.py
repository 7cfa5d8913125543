"""``--help`` of an ``exca_hydra.main`` app: the config groups (Hydra's ``$APP_CONFIG_GROUPS``,
generated and YAML options alike) and a table of every field of the composed config: path,
type, value (the model's default, unless a YAML file or an override changed it) and the field's
pydantic ``description``.  Only the chosen option of each group is expanded (``model=cnn
--help`` lists the CNN fields).  A required group left unchosen is shown as such.
"""

from __future__ import annotations

import re
import typing as tp

from omegaconf import DictConfig, OmegaConf

from ..launch.schema import MISSING, REQUIRED, _SKIP, fields_of

RESOLVER = "exca_model_help"

TEMPLATE = (
    "${hydra.help.header}\n"
    "== Configuration groups ==\n"
    "Compose your configuration from those groups (group=option)\n\n"
    "$APP_CONFIG_GROUPS\n"
    "== Fields ==\n"
    "Override any of them (foo.bar=value; a field shown as +foo.bar is not in the config until added,\n"
    "with the +); values are the composed config's\n\n"
    "${" + RESOLVER + ":}\n\n"
    "== Cache ==\n"
    "Results are cached under the infra's folder (infra.folder above; null: nothing is cached):\n"
    "set it with infra.folder=/path/to/cache on the command line or in a YAML file (a set\n"
    "hydra.launcher.folder or hydra.sweeper.folder wins over it). Jobs run with\n"
    "hydra/launcher=exca_local (the default; exca_slurm for Slurm) and hydra/sweeper=exca.\n\n"
    "${hydra.help.footer}"
)


def type_name(annotation: tp.Any) -> str:
    if isinstance(annotation, type) and tp.get_origin(annotation) is None:  # 3.10: list[int] is a type
        return annotation.__name__
    text = repr(annotation).replace("typing.", "").replace("NoneType", "None")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def _shown(node: tp.Any, key: str, default: tp.Any) -> str:
    if isinstance(node, DictConfig) and key in node:
        if OmegaConf.is_missing(node, key):
            return MISSING
        value = tp.cast(dict, OmegaConf.to_container(node, resolve=False))[key]
        return _short(value if isinstance(value, str) else repr(value))
    if default is REQUIRED:
        return MISSING
    if default is _SKIP:
        return "(computed)"
    return _short(repr(default))


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def rows(model: type, cfg: tp.Any, choices: tp.Mapping[str, tp.Any]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []

    def walk(cls: type, node: tp.Any, prefix: str, group_prefix: str, depth: int) -> None:
        if depth > 12:
            return
        for field in fields_of(cls):
            path, group = prefix + field.key, group_prefix + field.key
            description = field.info.description or ""
            # the node itself, unresolved: an interpolation that resolves only in a job
            # (${oc.env:...} unset here) is shown as written, not raised
            child = node._get_node(field.key) if isinstance(node, DictConfig) and field.key in node and not OmegaConf.is_missing(node, field.key) else None
            union = field.union
            if union is not None:
                chosen = choices.get(group)
                options = " | ".join(tag for tag, _ in union.members)
                value = chosen if chosen else ("??? (choose one)" if field.default is REQUIRED else "null" if child is None else "?")
                out.append((path, f"group: {options}", f"{group}={value}" if chosen else value, description))
                member = union.member(chosen) if isinstance(chosen, str) else None
                if member is not None:
                    walk(member, child, path + ".", group + "/", depth + 1)
                continue
            if field.sub is not None and isinstance(child, DictConfig):
                walk(field.sub, child, path + ".", group + "/", depth + 1)
                continue
            shown = path if not isinstance(node, DictConfig) or field.key in node else "+" + path  # the form that works
            out.append((shown, _short(type_name(field.info.annotation), 32), _shown(node, field.key, field.default), description))

    walk(model, cfg, "", "", 0)
    return out


def table(model: type, cfg: tp.Any, choices: tp.Mapping[str, tp.Any]) -> str:
    lines = rows(model, cfg, choices)
    if not lines:
        return "(no fields)"
    widths = [max(len(row[i]) for row in lines) for i in range(3)]
    text = "\n".join(
        f"{path:<{widths[0]}}  {kind:<{widths[1]}}  {value:<{widths[2]}}  {description}".rstrip()
        for path, kind, value, description in lines
    )
    return text.replace("$", "$$")  # the template goes through string.Template afterwards


def register(model: type) -> None:
    """The resolver the template calls, reading the composed config and the group choices."""

    def resolve(*, _root_: tp.Any) -> str:
        choices: dict[str, tp.Any] = {}
        try:
            choices = dict(OmegaConf.to_container(_root_.hydra.runtime.choices))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - no hydra node: the model's own defaults
            pass
        return table(model, _root_, choices)

    OmegaConf.register_new_resolver(RESOLVER, resolve, replace=True)
