"""What ``exca_hydra.main`` does before Hydra starts: generate the model's config, put it in
Hydra's search path, report a misspelt override."""

from __future__ import annotations

import typing as tp

from .generate import generate
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
    app = generate(model, primary, help_mode, selected)
    if help_mode:
        from .model_help import register

        register(model)
    activate(app)
    if overrides and not getattr(args, "shell_completion", False):  # -sc install=bash: not overrides
        from .suggest import check

        message = check(app, overrides, lambda: _conf_source(task, config_path))
        if message is not None:
            sys.stderr.write(message + "\n")
            sys.exit(1)
