"""What ``exca_hydra.main`` does before Hydra starts: generate the model's config, put it in
Hydra's search path, report a misspelt override."""

from __future__ import annotations

import typing as tp

from .generate import INFRA_KEYS, generate
from .model_source import _conf_source, activate


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
    completing = bool(args is not None and getattr(args, "shell_completion", False))
    app = generate(model, primary, help_mode, selected, complete=completing)  # completion: every infra field
    if help_mode:
        from .model_help import register

        register(model)
    activate(app)
    if overrides and not completing:  # -sc install=bash: not overrides
        _infra_fields(model, overrides)
        from .suggest import check

        message = check(app, overrides, lambda: _conf_source(task, config_path))
        if message is not None:
            sys.stderr.write(message + "\n")
            sys.exit(1)


def _infra_paths(model: type, prefix: str = "", depth: int = 0) -> dict[str, type]:
    """The dotted paths of the model's TaskInfra fields (in sub-models and union members too)."""
    from ..launch.schema import fields_of

    out: dict[str, type] = {}
    if depth > 8:
        return out
    for field in fields_of(model):
        path = prefix + field.key
        if field.sub is not None and getattr(field.sub, "_exca_is_infra", False):
            out[path] = field.sub
        elif field.sub is not None:
            out.update(_infra_paths(field.sub, path + ".", depth + 1))
        elif field.union is not None:
            for _, member in field.union.members:
                out.update(_infra_paths(member, path + ".", depth + 1))
    return out


def _infra_fields(model: type, overrides: tp.Sequence[tp.Any]) -> None:
    """``infra.gpus_per_node=2`` without the ``+`` that ``--help`` prints: an infra's node holds
    a few keys only (generate.INFRA_KEYS), so its other fields go to Hydra as
    ``++infra.gpus_per_node=2`` (add or override) in ``sys.argv``."""
    import sys

    from hydra.core.override_parser.types import OverrideType

    infras = _infra_paths(model)
    for override in overrides:
        path, _, name = override.key_or_group.rpartition(".")
        line = override.input_line
        if path not in infras or override.type != OverrideType.CHANGE or override.package is not None or not line:
            continue
        if name in getattr(infras[path], "model_fields", {}) and name not in INFRA_KEYS and line in sys.argv:
            sys.argv[sys.argv.index(line)] = "++" + line
