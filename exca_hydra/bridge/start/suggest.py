"""Did you mean: command-line overrides checked against the app's model before Hydra runs.

A misspelt field (``model.hiden=[3]``), group (``modle=cnn``, ``model/optt=sgd``) or option
(``model=cnnn``) is reported with the closest valid names and exit code 1, without a
traceback.  Only plain ``key=value`` overrides and group selections are checked; ``+key``,
``++key``, ``~key``, ``key@package`` and ``hydra...`` are left to Hydra and pydantic (which
report them with the field path and the job's overrides).  A key is accepted when any member
of a union could hold it (pydantic reports a field of the unchosen member), below a field that
is not a model (``tags.a``), and at any level of a model with ``extra="allow"``.
"""

from __future__ import annotations

import difflib
import typing as tp

from .generate import App
from ..launch.schema import fields_of


def _close(word: str, candidates: tp.Iterable[str]) -> list[str]:
    return difflib.get_close_matches(word, sorted(set(candidates)), n=3, cutoff=0.6)


def _did_you_mean(names: tp.Sequence[str]) -> str:
    if not names:
        return ""
    return "\nDid you mean " + " or ".join(f"'{name}'" for name in names) + "?"


def unknown_key(model: type, parts: tp.Sequence[str]) -> tuple[int, list[str], list[str]] | None:
    """None if some config of ``model`` may hold the dotted key ``parts``, else (index of the
    first unknown part, the names valid there, the classes that were looked in)."""
    level: list[type] = [model]
    for index, part in enumerate(parts):
        names: list[str] = []
        following: list[type] = []
        open_ = False
        for cls in level:
            if cls.model_config.get("extra") == "allow":  # type: ignore[attr-defined]
                open_ = True
            for field in fields_of(cls):
                names.append(field.key)
                if field.key != part:
                    continue
                if field.union is not None:
                    following.extend(member for _, member in field.union.members)
                elif field.sub is not None:
                    following.append(field.sub)
                else:
                    open_ = True  # a leaf: a dict, a list, a value (Hydra and pydantic judge)
        if part not in names:
            return None if open_ else (index, names, [cls.__name__ for cls in level])
        if open_ or not following:
            return None
        level = list(dict.fromkeys(following))
    return None


def _values(override: tp.Any) -> list[tp.Any] | None:
    """The group options an override names (a choice sweep's too), None if it names something else."""
    from hydra.core.override_parser.types import ChoiceSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        value = value.list
        return None if any(not isinstance(v, str) for v in value) else list(value)
    if override.is_sweep_override():
        return None  # glob, range, interval: Hydra expands and checks them
    return [value] if isinstance(value, str) else None


def check(app: App, overrides: tp.Sequence[tp.Any], conf: tp.Callable[[], tp.Any]) -> str | None:
    """The message for the first override that names no field, group or option of the app, or
    None.  ``conf()`` is the app's config directory source (or None): YAML groups and options."""
    from hydra.core.override_parser.types import OverrideType

    source: list[tp.Any] = []

    def yaml_source() -> tp.Any:
        if not source:
            source.append(conf())
        return source[0]

    for override in overrides:
        key = override.key_or_group
        if override.is_hydra_override() or key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.type != OverrideType.CHANGE or override.package is not None:
            continue
        line = override.input_line or key
        if key in app.groups:
            options = _values(override)
            if options is None:
                continue
            known = set(app.options(key))
            if any(option not in known for option in options):  # a YAML-only option?
                yaml = yaml_source()
                if yaml is not None and yaml.is_group(key):
                    known.update(yaml.list(key, _config_type()))
            for option in options:
                if option not in known:
                    return (
                        f"Could not find '{key}/{option}' (in '{line}').{_did_you_mean(_close(option, known))}\n"
                        f"Available options in '{key}': {', '.join(sorted(known))}"
                    )
            continue
        if "/" in key:
            yaml = yaml_source()
            if yaml is not None and yaml.is_group(key):
                continue
            groups = set(app.groups)
            return f"Could not override '{key}' (in '{line}'): no config group '{key}'.{_did_you_mean(_close(key, groups))}"
        parts = key.split(".")
        switch = _member_switch(app, parts, override)
        if switch is not None:
            return f"Could not override '{key}' (in '{line}'): {switch}"
        problem = unknown_key(app.model, parts)
        if problem is None:
            from .chosen import choices

            given = _given(app, overrides)
            for chosen in choices(app, given, yaml_source()):  # each option of a sweep
                other = other_member(app, parts, chosen, line)
                if other is not None:
                    return other
            swept = {g: v for g, v in given.items() if len(v) > 1}
            if swept:  # Hydra first composes the sweep with the default options, the swept ones too
                base = next(choices(app, {g: v for g, v in given.items() if g not in swept}, yaml_source()))
                if other_member(app, parts, base, line) is not None:
                    shown = " ".join(f"{g}={','.join(v)}" for g, v in swept.items())
                    return (f"Could not override '{key}' (in '{line}'): every option swept ({shown}) has it, but "
                            f"Hydra composes the sweep once with the default options first, and those do not. "
                            f"Write it ++{line} (set even where the base config lacks it)")  # fmt: skip
            continue
        index, names, classes = problem
        yaml = yaml_source()
        if index == 0 and yaml is not None and (yaml.is_group(parts[0]) or yaml.is_config(parts[0])):
            continue  # a YAML-only group of the app
        where = ".".join(parts[:index]) or "the root"
        matches = [".".join([*parts[:index], name, *parts[index + 1 :]]) for name in _close(parts[index], names)]
        owner = " | ".join(dict.fromkeys(classes))
        return (
            f"Could not override '{key}' (in '{line}'): no field '{parts[index]}' at {where} ({owner})."
            f"{_did_you_mean(matches)}"
        )
    return None


def _given(app: App, overrides: tp.Sequence[tp.Any]) -> dict[str, list[str]]:
    """The options the command line names for each generated group (several: a sweep)."""
    given: dict[str, list[str]] = {}
    for override in overrides:
        values = _values(override) if override.key_or_group in app.groups else None
        if values:
            given[override.key_or_group] = [str(v) for v in values]
    return given


def other_member(app: App, parts: tp.Sequence[str], chosen: tp.Mapping[str, str], line: str) -> str | None:
    """A field of another option of a union than the one chosen (``model.patch=8`` while
    model=resnet): which option has it, and how to select it."""
    cls, group = app.model, ""
    for index, part in enumerate(parts[:-1]):
        field = next((f for f in fields_of(cls) if f.key == part), None)
        if field is None:
            return None
        group = f"{group}/{part}" if group else part
        if field.union is None:
            if field.sub is None:
                return None
            cls = field.sub
            continue
        member = field.union.member(chosen.get(group, ""))
        if member is None:
            return None
        name = parts[index + 1]
        if name not in {f.key for f in fields_of(member)}:
            having = [tag for tag, other in field.union.members if name in {f.key for f in fields_of(other)}]
            if not having:
                return None
            return (f"Could not override '{'.'.join(parts)}' (in '{line}'): '{name}' is a field of "
                    f"{' or '.join(f'{group}={tag}' for tag in having)}, not of {group}={chosen[group]}. "
                    f"Select that option: {group}={having[0]} {line}")  # fmt: skip
        cls = member
    return None


def _member_switch(app: App, parts: tp.Sequence[str], override: tp.Any) -> str | None:
    """An override setting a union's tag (``model.opt.type=sgd``, ``model.opt={type: sgd}``) is
    applied after the group's option is merged: the other member's defaults would stay under it
    (a wrong value, or "Extra inputs").  The group selects a member with its own defaults."""
    *head, last = parts
    for group, tag_key in (("/".join(head), last), ("/".join(parts), None)):
        union = app.groups.get(group)
        if union is None or (tag_key is not None and tag_key != union.discriminator):
            continue
        try:
            value = override.value()
        except Exception:  # noqa: BLE001 - left to Hydra
            return None
        if tag_key is None:
            values: list[tp.Any] | None = [value.get(union.discriminator) if isinstance(value, dict) else None]
        else:
            values = _values(override)
        tags = [v for v in values or () if isinstance(v, str) and union.member(v) is not None]
        if not tags:
            return None
        return (
            f"it sets the member of the union at '{'.'.join(group.split('/'))}' after the group's option is merged, "
            f"so the other member's defaults would stay. Select the member with the group: {group}={','.join(tags)}"
        )
    return None


def _config_type() -> tp.Any:
    from hydra.core.object_type import ObjectType

    return ObjectType.CONFIG
