"""The Hydra bridge: composed DictConfig -> the app's pydantic model, with errors that name the field.

``exca_hydra.main`` wraps ``hydra.main`` for a task function annotated with a pydantic model; the
launcher and the sweeper find that model on the task function (``__exca_model__``).
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing as tp
from dataclasses import dataclass

from hydra.errors import CompactHydraException, HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

if tp.TYPE_CHECKING:
    import pydantic


@dataclass
class FieldError:
    field: str
    message: str


class ConfigValidationError(CompactHydraException):
    """Configs that do not validate; printed by Hydra without a traceback."""

    def __init__(self, message: str, errors: tp.Sequence[tp.Any] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


def _pydantic_errors(error: "pydantic.ValidationError") -> list[FieldError]:
    out = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item.get("type") in ("extra_forbidden", "literal_error", "union_tag_invalid") or "input" in item:
            value = item.get("input")
            if not isinstance(value, (dict, list)):
                message += f" (got {value!r})"
        out.append(FieldError(field, message))
    return out


def task_container(cfg: DictConfig) -> dict[str, tp.Any]:
    """The task part of a composed config, resolved: ``???`` and broken interpolations raise."""
    keys = [str(key) for key in cfg if key != "hydra"]
    task_cfg = OmegaConf.masked_copy(cfg, keys) if "hydra" in cfg else cfg
    return OmegaConf.to_container(task_cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def convert(
    cfg: DictConfig, model: type[pydantic.BaseModel] | None, container: tp.Callable[[DictConfig], tp.Any] = task_container
) -> tuple[tp.Any, list[FieldError]]:
    """(instance or resolved dict, errors): every problem of one config, not just the first."""
    try:
        data = container(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "<config>"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, [FieldError(str(key), f"{type(e).__name__}: {message}")]
    if model is None:
        return data, []
    import pydantic

    try:
        return model.model_validate(data), []
    except pydantic.ValidationError as e:
        return None, _pydantic_errors(e)


def plugin_params(models: tp.Sequence[type], params: tp.Mapping[str, tp.Any], node: str) -> tp.Any:
    """A plugin's ``hydra.<node>`` parameters validated by each pydantic model (the first one's
    instance is returned): an unknown or mistyped key fails before anything runs."""
    import pydantic

    raw = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in params.items()}
    try:
        validated = [model(**raw) for model in models]
    except pydantic.ValidationError as e:
        errors = "\n".join(f"  hydra.{node}.{err.field}: {err.message}" for err in _pydantic_errors(e))
        raise ConfigValidationError(f"Invalid {node} parameters:\n{errors}") from None
    return validated[0]


def format_errors(
    failures: tp.Sequence[tuple[int, tp.Sequence[str], tp.Sequence[FieldError]]], total: int
) -> str:
    """One table for every invalid job: its number, its overrides, the field and the message."""
    lines = [f"{len(failures)} of {total} job(s) have an invalid config; nothing was launched."]
    for num, overrides, errors in failures:
        lines.append(f"  #{num} : {' '.join(overrides) or '(no overrides)'}")
        for error in errors:
            lines.append(f"      {error.field}: {error.message}")
    return "\n".join(lines)


def model_of(function: tp.Callable[..., tp.Any]) -> type | None:
    """The pydantic model a task function takes: its first parameter's annotation, or the class
    of a method decorated with ``@infra.apply``."""
    import pydantic

    function = getattr(function, "__exca_function__", function)
    if hasattr(function, "__exca_method__"):
        owner: tp.Any = sys.modules[function.__module__]
        for part in function.__qualname__.split(".")[:-1]:
            owner = getattr(owner, part)
        return owner  # type: ignore[no-any-return]
    params = list(inspect.signature(function).parameters.values())
    if not params:
        return None
    try:
        hints = tp.get_type_hints(function)
    except Exception:
        hints = {}
    annotation = hints.get(params[0].name)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def to_model(cfg: DictConfig, model: type) -> tp.Any:
    """Convert one composed config into ``model``, raising ConfigValidationError on failure."""
    obj, errors = convert(cfg, model)
    if errors:
        lines = [f"Invalid config for {model.__name__}:"]
        lines += [f"  {e.field}: {e.message}" for e in errors]
        raise ConfigValidationError("\n".join(lines), errors)
    return obj


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
        # the model is the config (schema.py): a primary config of this name always exists
        primary = config_name or "config"
        hydra_main = hydra.main(config_path=config_path, config_name=primary, version_base=version_base)(task)

        def run(cfg_passthrough: tp.Any = None) -> tp.Any:
            from .schema import start

            args, overrides = _check_override_syntax() if cfg_passthrough is None else (None, None)
            start(task, model, primary, config_path, args, overrides)
            if args is None or not args.help:
                return hydra_main(cfg_passthrough)
            try:
                return hydra_main(cfg_passthrough)
            except HydraException as e:  # Hydra's --help does not report a composition error itself
                sys.stderr.write(f"{e}\n")
                sys.exit(1)

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
    from hydra.errors import HydraException

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
        from .infra import import_name

        self.__exca_function__ = function
        self.__exca_model__ = model
        # the import name of the function's module, fixed here: in a job process __main__ differs
        self.__exca_module__ = import_name(function.__module__)
        functools.update_wrapper(self, function)
        # one computation, one cache entry (delegation.py): `return cfg.method()` is that method
        from .delegation import infra_calls

        method, calls = infra_calls(function, model)
        if method is not None:
            self.__exca_function__ = getattr(model, method)
        self.__exca_uncached__ = calls and method is None  # the model's methods cache, not the app

    def __call__(self, cfg: DictConfig) -> tp.Any:
        obj = to_model(cfg, self.__exca_model__)
        function = self.__exca_function__
        if hasattr(function, "__exca_method__") or self.__exca_uncached__:  # the model's infra caches
            return function(obj)
        # a single run, or a job of a launcher other than exca's: cache under the model's
        # infra folder, as the exca launchers do, so the exca sweeper can skip it next time
        from .job import run_cached
        from .launcher import entry_of

        entry = entry_of(self, None, obj)
        if entry is not None and not entry.has_result():
            from .uid import uid_config

            entry.write_configs(obj.model_dump(mode="json"), uid_config(obj))
        return run_cached(function, obj, None if entry is None else str(entry.folder))
