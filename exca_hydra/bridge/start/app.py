"""The Hydra bridge: composed DictConfig -> the app's pydantic model, with errors that name the field.

``exca_hydra.main`` wraps ``hydra.main`` for a task function annotated with a pydantic model; the
launcher and the sweeper find that model in the task function's ``exca_info`` (``task_info.py``).
"""

from __future__ import annotations

import functools
import sys
import types
import typing as tp

from hydra.errors import HydraException
from omegaconf import DictConfig

from ...cache.layout import function_program, import_name
from ..launch.convert import model_of, to_model
from ..launch.task_info import TaskInfo


def main(
    config_path: str | None = None,
    config_name: str | None = None,
    version_base: str | None = "1.3",
) -> tp.Callable[[tp.Callable[[tp.Any], tp.Any]], tp.Callable[[], None]]:
    """``hydra.main`` for a task taking the app's pydantic model, e.g. ``def main(cfg: Trainer)``
    (or an ``@infra.apply`` method such as ``Trainer.run``)."""
    import hydra

    def decorator(function: tp.Callable[[tp.Any], tp.Any]) -> tp.Callable[[], None]:
        model = model_of(function)
        if model is None:
            raise TypeError(
                f"exca_hydra.main: annotate the first parameter of {function.__qualname__} with "
                "the app's pydantic model (def main(cfg: MyModel)), or use hydra.main for a DictConfig task"
            )
        task = _Task(function, model)
        caller = sys._getframe(1)
        if caller.f_globals.get("__name__") != getattr(function, "__module__", None):
            # e.g. main(...)(Trainer.run) with Trainer imported: Hydra locates config_path and names
            # the job from the task's module (after unwrapping __wrapped__); make that the caller's
            locator = _locator(caller.f_globals.get("__name__", "__main__"), caller.f_code.co_filename)
            task.__wrapped__ = locator  # type: ignore[attr-defined]
        # the model is the config (generate.py): a primary config of this name always exists
        primary = config_name or "config"
        hydra_main = hydra.main(config_path=config_path, config_name=primary, version_base=version_base)(task)

        def run(cfg_passthrough: tp.Any = None) -> tp.Any:
            from .model_start import start

            args, overrides = _check_override_syntax() if cfg_passthrough is None else (None, None)
            start(task, model, primary, config_path, args, overrides)
            try:
                return hydra_main(cfg_passthrough)
            except HydraException as e:
                if args is None or not args.help:
                    raise
                sys.stderr.write(f"{e}\n")  # Hydra's --help does not report a composition error itself
                sys.exit(1)
            except (SystemExit, Exception) as e:
                if not (isinstance(e, SystemExit) and e.code in (0, None)):
                    _hint_invisible_plugins()  # only after a failure: nothing on a normal start
                raise

        run.__name__, run.__qualname__, run.__doc__ = hydra_main.__name__, hydra_main.__qualname__, hydra_main.__doc__
        return run

    return decorator


def _check_override_syntax() -> tuple[tp.Any, list[tp.Any] | None]:
    """Hydra reports some syntax errors of a command-line override without naming it (``lr=range(``
    gives "no viable alternative at input 'range('"): name the override and its key, exit 1 as
    Hydra does.  Anything else (and HYDRA_FULL_ERROR=1) is left to Hydra.  Returns the parsed
    arguments and overrides (None: left to Hydra)."""
    import os

    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    class _ArgsError(Exception):
        pass

    def error(message: str) -> tp.NoReturn:
        raise _ArgsError(message)

    args_parser = get_args_parser()
    args_parser.error = error  # type: ignore[method-assign]  # Hydra reports bad arguments itself
    try:
        args = args_parser.parse_known_args()[0]
    except _ArgsError:
        return None, None
    parser = OverridesParser.create()
    parsed = []
    for override in args.overrides:
        try:
            parsed.extend(parser.parse_overrides([override]))
        except HydraException as e:
            if override in str(e) or os.environ.get("HYDRA_FULL_ERROR") == "1":
                return args, None  # Hydra's message names it
            key = override.split("=", 1)[0]
            sys.stderr.write(
                f"Error parsing override '{override}' (key '{key}'):\n{e}\n\n"
                "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
            )
            sys.exit(1)
        except Exception:
            return args, None
    return args, parsed


def _locator(module: str, filename: str) -> tp.Callable[[], None]:
    """A function that Hydra's calling-file/module detection attributes to ``module``/``filename``."""

    def located() -> None:
        pass

    return types.FunctionType(located.__code__.replace(co_filename=filename), {"__name__": module})


class _Task:
    """The task function handed to Hydra: validates the config, then calls the user's function."""

    def __init__(self, function: tp.Callable[[tp.Any], tp.Any], model: type) -> None:
        functools.update_wrapper(self, function)
        # one computation, one cache entry (delegation.py): `return cfg.method()` is that method
        from .delegation import infra_calls

        method, calls = infra_calls(function, model)
        self.exca_info = TaskInfo(
            function=getattr(model, method) if method is not None else function,
            model=model,
            # the import name of the function's module, fixed here: in a job process __main__ differs
            module=import_name(function.__module__, getattr(getattr(function, "__code__", None), "co_filename", None)),
            uncached=bool(calls) and method is None,  # the model's methods cache, not the app
        )

    def __call__(self, cfg: DictConfig) -> tp.Any:
        from ..launch.jobs import configured_folder, entry_of

        info = self.exca_info
        obj = to_model(cfg, info.model)
        # a single run, or a job of a launcher other than exca's: cache where the exca sweeper
        # and launchers look (hydra.sweeper.folder, hydra.launcher.folder, else infra.folder)
        folder = configured_folder(_hydra_node())
        if info.method is not None:  # an @infra.apply method: its infra caches
            return info.function(_with_folder(obj, info.method, folder) if folder else obj)
        if info.uncached:  # it calls the model's cached methods: they cache, not the app
            return info.function(obj)
        from ...cache.digest import field_digests
        from ...cache.uid import uid_config
        from ...execution.worker import run_cached

        uid_cfg = uid_config(obj)
        entry = entry_of(self, folder, obj, uid_cfg)
        if entry is not None and not entry.has_result():
            entry.write_configs(obj.model_dump(mode="json"), uid_cfg, function_program(info.function), field_digests(obj))
        return run_cached(info.function, obj, entry)


def _hydra_node() -> tp.Any:
    """The running job's ``hydra`` node (empty outside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else {}


def _with_folder(obj: tp.Any, method: tp.Any, folder: str) -> tp.Any:
    """``obj`` whose infra running ``method`` caches under ``folder`` (a copy: the uid is the same)."""
    for name, (function, _) in getattr(type(obj), "__exca_infras__", {}).items():
        if function is method:
            data = obj.model_dump()
            data[name] = {**data[name], "folder": folder}
            return type(obj).model_validate(data)
    return obj


def _hint_invisible_plugins() -> None:
    """Hydra failed: if it cannot see exca's plugins (it then says "Could not find
    'hydra/sweeper/exca'"), say why and how to fix the install."""
    import importlib
    import pkgutil

    try:
        import hydra_plugins

        path, init = list(hydra_plugins.__path__), getattr(hydra_plugins, "__file__", None)
    except Exception:
        path, init = [], None
    if any(m.name == "exca_hydra_plugin" for m in pkgutil.iter_modules(path)):  # Hydra's scan finds them
        return
    try:
        where = importlib.import_module("hydra_plugins.exca_hydra_plugin").__file__
    except Exception:
        where = None
    if init:
        fix = f"{init} makes hydra_plugins a regular package, hiding the namespace: remove that file"
    elif where:
        fix = (
            f"they import (from {where}) through an import hook, not from a folder of hydra_plugins.__path__ "
            f"{path} that Hydra scans (setuptools' editable finder): reinstall with `pip install -e .` "
            "(an older exca-hydra checkout: add `--config-settings editable_mode=compat`)"
        )
    else:
        fix = f"not installed for {sys.executable}: `pip install -e .` in exca-hydra's checkout"
    sys.stderr.write(
        "exca-hydra: the exca plugins (hydra/sweeper=exca, hydra/launcher=exca_local|exca_slurm) are not "
        f"visible to Hydra: {fix}. Check with `python -c 'import hydra_plugins.exca_hydra_plugin'` and "
        "`python example_app/app.py --info plugins` (lists ExcaSweeper).\n"
    )
