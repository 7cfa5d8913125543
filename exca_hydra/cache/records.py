"""The configs a cache entry records (``config.yaml``, ``uid.yaml``): how they are written, read
within bounds, and compared with the current config.

Anyone who can write a cache folder can write these files, and ``list``, ``table`` and every
cached call read them: a file is read only up to ``MAX_FILE_BYTES``, without YAML aliases (a few
hundred bytes of aliases expand to billions of nodes) and not nested so deep that libyaml's C
loader, which recurses without limit, would crash the process.  Files this library
writes have none of these.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import typing as tp
from pathlib import Path

import yaml

from .same import same_value

MAX_FILE_BYTES = 4 << 20
MAX_SLOW_BYTES = 256 << 10  # for the pure-Python loader (~1 MB/s): half a second at most
MAX_DEPTH = 200  # for the pure-Python loader (its recursion fails near 300 anyway)
_FAST_LIMIT = 1000  # brackets, line prefix: under these a file nests < 2000 levels, which libyaml reads
_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster
_DEEP_LINE = re.compile(r"^[ \t?:-]{%d,}" % _FAST_LIMIT, re.MULTILINE)  # indentation, "- - -"


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: tp.Any) -> bool:  # a value used twice is written twice
        return True


class _BoundedLoader(yaml.SafeLoader):
    """The pure-Python loader (deep nesting: RecursionError, not a crash), aliases refused."""

    _depth = 0

    def compose_node(self, parent: tp.Any, index: tp.Any) -> tp.Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not read in cache files", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested over {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_text(text: str) -> str:
    """``text`` as YAML can hold it: a lone surrogate (not Unicode, e.g. a non-UTF-8 byte of the
    command line) as its escaped bytes; YAML writes it but no YAML reader reads it back."""
    try:
        text.encode("utf8")
    except UnicodeEncodeError:
        return text.encode("utf8", "surrogatepass").decode("utf8", "backslashreplace")
    return text


def _lossy(text: str) -> str:
    """How pydantic's JSON mode writes a dict key holding a lone surrogate."""
    return text.encode("utf8", "surrogatepass").decode("utf8", "replace")


def _text_forms(text: str) -> tuple[str, ...]:
    return (text,) if text.isascii() else (text, _yaml_text(text), _lossy(text))


def yaml_safe(data: tp.Any) -> tp.Any:
    kind = type(data)
    if kind is not bool and kind not in (str, int, float) and isinstance(data, (str, int, float)):
        data = (str if isinstance(data, str) else float if isinstance(data, float) else int)(data)  # ByteSize, a str subclass: YAML writes its base
    if isinstance(data, str):
        return data if data.isascii() else _yaml_text(data)
    if isinstance(data, dict):
        return {yaml_safe(k): yaml_safe(v) for k, v in data.items()}
    if isinstance(data, list):
        return [yaml_safe(v) for v in data]
    return data


def dump_yaml(data: tp.Any) -> str:
    return yaml.dump(yaml_safe(data), Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


def open_file(path: Path, follow: bool = True) -> tp.BinaryIO:
    """A cache file, opened for reading without blocking: a named pipe or a device planted in
    its place (an open() that waits for a writer forever) is an OSError, as is, with
    ``follow=False``, a symbolic link (which could lead out of the cache, to a file only the reader
    may read)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path) -> str:
    """A cache file's text, refused (ValueError) above ``MAX_FILE_BYTES``; a link, a pipe: OSError."""
    with open_file(path, follow=False) as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is over {MAX_FILE_BYTES >> 20} MiB: not a file this library wrote")
    return data.decode("utf8")


def load_yaml(text: str) -> tp.Any:
    """YAML of a cache file; yaml.YAMLError when it has aliases or nests too deep."""
    if "&" not in text and "*" not in text and text.count("[") + text.count("{") < _FAST_LIMIT and not _DEEP_LINE.search(text):
        return yaml.load(text, Loader=_CLoader)  # what this library writes: the fast loader is safe
    if len(text) > MAX_SLOW_BYTES:
        raise yaml.YAMLError(f"over {MAX_SLOW_BYTES >> 10} KiB with aliases, anchors or deep nesting")
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except RecursionError as e:
        raise yaml.YAMLError(f"nested too deep: {e}") from e


def read_yaml(path: Path) -> tp.Any:
    """Raise OSError, ValueError (too big, not UTF-8) or yaml.YAMLError for an unreadable file."""
    return load_yaml(read_text(path))


def read_json(path: Path) -> tp.Any:
    """Raise OSError or ValueError (too big, not JSON, nested too deep)."""
    try:
        return json.loads(read_text(path))
    except RecursionError as e:
        raise ValueError(f"{path} is nested too deep") from e


def cut(value: tp.Any, limit: int = 2000) -> str:
    """A stored value in a message: a hostile file must not make it megabytes long."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keys_as_stored(stored: dict[tp.Any, tp.Any], current: dict[tp.Any, tp.Any]) -> dict[tp.Any, tp.Any]:
    """``current`` with each key holding a lone surrogate as ``stored`` writes it (escaped)."""
    out = {}
    for key, value in current.items():
        if isinstance(key, str):
            key = next((form for form in _text_forms(key) if form in stored), key)
        out[key] = value
    return out


def normalized(data: tp.Any) -> tp.Any:
    return json.loads(json.dumps(data))


def same_stored(stored: tp.Any, current: tp.Any, numbers: bool = False) -> bool:
    """A stored config value is the current one, of the same kind (``true`` is not ``1``), NaN
    equal to itself; a set of the current config (a sorted list, see identity_config) matches
    the stored list in any order.  ``numbers``: an int and a float of one value are the same (a
    float field's int default is written as a float to config.yaml)."""
    if isinstance(stored, list) and isinstance(current, list):
        if len(stored) != len(current):
            return False
        if type(current) is not list:
            from .kinds import _Unordered  # (imported late: job processes import this module)

            if isinstance(current, _Unordered):  # a set: config.yaml has it, and any set inside it,
                return same_stored(_deep_sorted(stored), _deep_sorted(current), numbers)  # in hash order
        return all(same_stored(a, b, numbers) for a, b in zip(stored, current))
    if isinstance(stored, dict) and isinstance(current, dict):
        if stored.keys() != current.keys():
            current = _keys_as_stored(stored, current)
        return stored.keys() == current.keys() and all(same_stored(stored[k], current[k], numbers) for k in stored)
    if isinstance(stored, str) and isinstance(current, str):  # (a key-like str subclass)
        return stored in _text_forms(current)
    if numbers and stored is None and type(current) is float and not math.isfinite(current):
        return True  # pydantic writes an inf or a NaN inside tp.Any as null (uid.yaml has it)
    if numbers and {type(stored), type(current)} == {int, float}:
        return bool(stored == current) and (stored != 0 or same_value(float(stored), float(current)))  # -0.0
    return same_value(stored, current)


def _deep_sorted(items: tp.Any) -> tp.Any:
    """A set's items in one order, with every list inside sorted too (a frozenset in a set is
    written as a list in its hash order; a kind or order that changed inside is cache.digest's to see)."""
    from .kinds import _dumps

    if isinstance(items, list):
        return sorted((_deep_sorted(item) for item in items), key=_dumps)
    return items


def changed_paths(stored: tp.Any, current: tp.Any, path: str = "") -> tp.Iterator[str]:
    """Dotted paths where a stored config.yaml differs from ``identity_config``: a model's field
    that only one of them has was added or removed since (not a difference), a dict value's key
    that only one has is one, as is None that became a dict or a model."""
    from .kinds import _ModelDict, _Tagged  # (imported late: job processes import this module)

    if type(current) is _Tagged:  # a secret's hash: config.yaml holds it masked, the uid checks it
        return
    if isinstance(stored, dict) and isinstance(current, dict):
        model = type(current) is _ModelDict
        if stored.keys() != current.keys():
            current = _keys_as_stored(stored, current)
        if not model and stored.keys() != current.keys():
            yield path[:-1] or _ROOT
            return
        for key in stored.keys() & current.keys():
            yield from changed_paths(stored[key], current[key], f"{path}{key}.")
    elif not same_stored(stored, current, numbers=True):
        yield path[:-1] or "(the config)"


_ROOT = "(the config)"


def _at(data: tp.Any, path: str) -> tp.Any:
    if path == _ROOT:
        return data
    for key in path.split("."):  # (a key with a dot: shown as missing, still reported)
        data = data.get(key) if isinstance(data, dict) else None
    return data


def changed_values(stored: tp.Any, current: tp.Any) -> list[tuple[str, tp.Any, tp.Any]]:
    """(path, stored value, current value) where config.yaml and ``identity_config`` differ."""
    from .kinds import _ModelDict
    from .uid_name import flatten

    if type(current) is not _ModelDict:  # a plain dict config: the leaves both have
        old, new = flatten(stored), flatten(current)
        return [(k, old[k], v) for k, v in new.items() if k in old and not same_stored(old[k], v, numbers=True)]
    return [(p, _at(stored, p), _at(current, p)) for p in changed_paths(stored, current)]


def without_secrets(full: tp.Any, uid_cfg: tp.Any) -> tp.Any:
    """``full`` with each value that enters the uid as a secret's hash masked (a secret key of
    a plain dict config, a text holding a password, in dicts and lists; a pydantic secret is
    masked by pydantic already)."""
    if isinstance(uid_cfg, dict) and list(uid_cfg) == ["!secret"]:
        return "**********"
    if isinstance(full, list) and isinstance(uid_cfg, list) and len(full) == len(uid_cfg):
        items = [without_secrets(a, b) for a, b in zip(full, uid_cfg)]
        return items if any(a is not b for a, b in zip(items, full)) else full
    if not isinstance(full, dict) or not isinstance(uid_cfg, dict):
        return full
    if len(uid_cfg) == 1 and next(iter(uid_cfg)).startswith("!"):  # a tagged kind: its payload
        return without_secrets(full, next(iter(uid_cfg.values())))
    out = full
    for key, value in uid_cfg.items():
        if not isinstance(value, (dict, list)) or key not in full:
            continue
        masked = without_secrets(full[key], value)
        if masked is not full[key]:
            out = dict(out) if out is full else out
            out[key] = masked
    return out
