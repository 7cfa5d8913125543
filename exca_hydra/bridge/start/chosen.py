"""The option of each generated group a run composes, before Hydra runs: the command line's,
else the defaults list of the node that selects it, with the app's YAML file of that node on
top (its own defaults list, and a union value it switches by tag: ``opt: {type: sgd}``).  Used
to say which member has a field (``model.patch=8`` while ``model=resnet``)."""

from __future__ import annotations

import itertools
import typing as tp

from omegaconf import DictConfig, OmegaConf

from .generate import App


def _join(base: str, key: str) -> str:
    return f"{base}/{key}" if base else key


def node_defaults(app: App, node: str, yaml: tp.Any) -> list[tp.Any]:
    """The defaults list node ``node`` composes with: generated, the YAML file's on top."""
    from .model_source import _entry_key, combine_defaults

    generated = list(app.nodes.get(node, {}).get("defaults", []))
    if yaml is None or not yaml.is_config(f"{node}.yaml"):
        return generated
    try:
        cfg = yaml.load_config(f"{node}.yaml").config
    except Exception:  # noqa: BLE001 - a broken file: Hydra reports it
        return []
    if not isinstance(cfg, DictConfig):
        return []
    data: tp.Any = OmegaConf.to_container(cfg, resolve=False)
    given = data.pop("defaults", None)
    base = node.rpartition("/")[0] if node != app.primary else ""
    out = []
    for entry in generated:
        key = _entry_key(entry)
        union = app.groups.get(_join(base, key)) if key else None
        value: tp.Any = data
        for part in (key or "").split("/") if union is not None else ():
            value = value.get(part) if isinstance(value, dict) else None
        tag = value.get(union.discriminator) if isinstance(value, dict) and union is not None else None
        if isinstance(tag, str) and tag != next(iter(entry.values())):
            entry = {key: tag}  # the file switches the member (model_source does the same)
        out.append(entry)
    return combine_defaults(out, given if isinstance(given, list) or given is None else [given])


def choices(app: App, given: tp.Mapping[str, list[str]], yaml: tp.Any) -> tp.Iterator[dict[str, str]]:
    """Every combination of options the run composes (one per value of a swept group)."""
    from .model_source import _entry_key

    swept = sorted(g for g, values in given.items() if len(values) > 1)
    for combo in itertools.product(*(given[g] for g in swept)) if swept else [()]:
        pick = {g: v[0] for g, v in given.items() if len(v) == 1} | dict(zip(swept, combo))
        chosen: dict[str, str] = {}
        pending = [(app.primary, "")]
        while pending:
            node, base = pending.pop()
            for entry in node_defaults(app, node, yaml):
                key = _entry_key(entry)
                if key is None:
                    continue
                group = _join(base, key)
                option = pick.get(group, next(iter(entry.values())))
                if group in app.groups and isinstance(option, str) and group not in chosen:
                    chosen[group] = option
                    pending.append((f"{group}/{option}", group))
        yield chosen
