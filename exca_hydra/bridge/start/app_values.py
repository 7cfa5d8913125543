"""The config an app composes for some overrides, for ``exca-hydra explain --app``: its YAML
files, its generated defaults and the overrides, as the app's own ``--cfg job`` prints them (a
subprocess: the app's module is imported there, never in the cache tool)."""

from __future__ import annotations

import subprocess
import sys
import typing as tp

import yaml

from ...cache.uid_name import flatten


def _resource(key: str) -> bool:
    """An infra field other than ``version``: not part of a model's uid."""
    parts = key.split(".")
    return "infra" in parts[:-1] and parts[-1] != "version"


def composed_values(app: str, values: tp.Sequence[str]) -> tuple[dict[str, tp.Any], set[str]]:
    """Every leaf of the composed config (dotted keys), and those that are an infra's fields
    other than ``version`` (a model's uid leaves them out, a plain app's keeps them); ValueError
    with the app's message when it does not compose."""
    for flags in (["--resolve"], []):  # unresolved if an interpolation cannot resolve here
        proc = subprocess.run(
            [sys.executable, app, "--cfg", "job", *flags, *values], capture_output=True, text=True, timeout=120
        )
        if proc.returncode == 0:
            break
    if proc.returncode != 0:
        raise ValueError(f"{app} does not compose {' '.join(values) or '(no overrides)'}:\n{proc.stderr.strip()}")
    wanted = flatten(yaml.safe_load(proc.stdout) or {})
    return wanted, {key for key in wanted if _resource(key)}
