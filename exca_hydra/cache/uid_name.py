"""The folder name of a uid config: a readable prefix (the non-default values, dotted) and a hash
of the canonical config."""

from __future__ import annotations

import hashlib
import re
import typing as tp

from .kinds import _dumps, _Key, _long_int_error, _Tagged


MAX_PREFIX_CHARS = 120  # keeps the folder name far below the 255-byte limit
MAX_ITEM_CHARS = 40
HASH_CHARS = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@%-]")


def flatten(cfg: tp.Any, prefix: str = "") -> dict[str, tp.Any]:
    """Dotted keys of a nested dict: {"a": {"b": 1}} -> {"a.b": 1}."""
    if isinstance(cfg, dict) and cfg:
        out: dict[str, tp.Any] = {}
        for key, value in cfg.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: cfg} if prefix else {}


def _flatten(cfg: dict[str, tp.Any], prefix: str, out: list[str]) -> None:
    for key in sorted(cfg):
        value = cfg[key]
        kind = type(value)
        while kind is _Tagged:  # the readable prefix shows the value, without its kind
            tag, value = next(iter(value.items()))
            if tag == "!secret":
                value = "***"
            kind = type(value)
        if type(key) is _Key:
            key = key.split(":", 1)[1]
        if kind is dict and value:
            _flatten(value, f"{prefix}{key}.", out)
            continue
        if kind is str:
            text = value
        elif kind is int or kind is float:
            text = repr(value)  # what json.dumps writes, without its overhead
        else:
            text = _dumps(value)
        if len(text) > MAX_ITEM_CHARS:
            text = text[: MAX_ITEM_CHARS - 3] + "..."
        out.append(f"{prefix}{key}={text}")


def uid_string(cfg: dict[str, tp.Any]) -> str:
    """Folder-safe uid of a uid config: ``a.b=1,c=x-<hash>``; at most ~140 ASCII chars."""
    try:
        # surrogatepass: a lone surrogate (e.g. a non-UTF-8 byte of argv) hashes instead of
        # raising; every other string encodes exactly as before
        text = _dumps(cfg).encode("utf8", "surrogatepass")
    except ValueError as e:
        raise _long_int_error(cfg, e) from e
    digest = hashlib.blake2b(text, digest_size=HASH_CHARS // 2).hexdigest()
    items: list[str] = []
    if cfg:
        _flatten(cfg, "", items)
    prefix = _UNSAFE.sub("_", ",".join(items)) if items else "default"
    if len(prefix) > MAX_PREFIX_CHARS:
        prefix = prefix[:MAX_PREFIX_CHARS] + "..."
    if prefix[0] in ".-":  # never a hidden file, never an option
        prefix = "_" + prefix[1:]
    return f"{prefix}-{digest}"
