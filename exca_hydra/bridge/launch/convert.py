"""Composed DictConfig -> the app's pydantic model, with errors that name the field; the task
function's model; plugin parameters validated the same way."""

from __future__ import annotations

import inspect
import sys
import typing as tp
from dataclasses import dataclass

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ...cache.kinds import _SECRETS as SECRET_TYPES
from ...cache.kinds import _model_members, is_secret, is_secret_text

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


def _pydantic_errors(error: "pydantic.ValidationError", model: type | None = None) -> list[FieldError]:
    out = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item.get("type") in ("extra_forbidden", "literal_error", "union_tag_invalid") or "input" in item:
            value = item.get("input")
            if not isinstance(value, (dict, list)):
                secret = is_secret_text(value) or (model is not None and secret_field(model, [str(p) for p in item["loc"]]))
                message += " (got '***')" if secret else f" (got {value!r})"
        if item.get("type") == "extra_forbidden" and model is not None:
            from .member_fields import other_member_note

            note = other_member_note(model, item["loc"])
            message += f"; {note}" if note else ""
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
        return None, _pydantic_errors(e, model)


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


def secret_field(model: tp.Any, parts: tp.Sequence[str]) -> bool:
    """Whether the field at ``parts`` of ``model`` holds a pydantic secret (SecretStr...)."""
    import pydantic

    annotation: tp.Any = model
    for part in parts:
        members: list[tp.Any] = [annotation] if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) else _model_members(annotation)
        found = [m.model_fields[part].annotation for m in members if part in m.model_fields]
        if not found:
            return False
        annotation = found[0]
    return _holds_secret(annotation)


def _holds_secret(annotation: tp.Any) -> bool:
    kind = tp.get_origin(annotation) or annotation
    if isinstance(kind, type) and issubclass(kind, SECRET_TYPES):
        return True
    return any(_holds_secret(arg) for arg in tp.get_args(annotation))


def masked_overrides(overrides: tp.Sequence[str], model: tp.Any) -> list[str]:
    """Overrides of a secret field, or holding a password, as ``key=***`` (printed in messages)."""
    out = []
    for override in overrides:
        key, sep, value = override.partition("=")
        path = key.lstrip("+~").split("@")[0].split(".")
        secret = sep and (is_secret_text(value.replace("\\", "")) or (model is not None and secret_field(model, path))
                          or (model is None and any(is_secret(p, None, q) for q, p in zip([None, *path], path))))  # fmt: skip
        out.append(f"{key}=***" if secret else override)
    return out


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

    if hasattr(function, "__exca_method__"):  # an @infra.apply method
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
