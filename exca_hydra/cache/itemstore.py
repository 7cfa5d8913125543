"""The per-item store of a MapInfra uid folder: items written in batches, read back by key.

Layout, under ``<uid folder>/items/``:

- ``b-<token>.dat``: one data file per batch, written to a temporary name, fsynced, renamed. It
  holds the batch's numpy arrays (those sharing one dtype and shape as one stacked block, read
  back as rows of one memory map) and its other Python values, each pickled on its own;
- ``index-<token>.jsonl``: one append-only index per writing process, one line per batch (written
  after the batch's data file): the batch's keys, how to read each, and the JSON-able values
  themselves. A line cut by a crash is ignored: a crash loses at most the batch being written.

A process loads the index once (then only the bytes appended since, when a key is missing); a
read is a dictionary look-up plus a row view, a pickle load, or the stored JSON value. Pickles
are loaded only from data files that pass the trust rules of results (``trust.check_trusted``).
"""

from __future__ import annotations

import gc
import json
import mmap
import logging
import os
import pickle
import threading
import time
import typing as tp
import uuid
from pathlib import Path

from .errors import CacheError
from .itemkinds import array_kind, common_kind, fresh, is_jsonable, same_kind, void
from .store import FILE_MODE, UID_CONFIG

ITEMS = "items"
ALIGN = 64

_fast_loads: tp.Callable[[bytes], tp.Any]
try:  # a faster parser of the same JSON (exca's dependency); the standard one otherwise
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads
_STORES: dict[str, "ItemStore"] = {}

logger = logging.getLogger("exca_hydra.map")


class _Batch:
    """One data file, mapped once per process on first read."""

    __slots__ = ("path", "stack", "map", "trusted")

    def __init__(self, path: Path, stack: tp.Any) -> None:
        self.path = path
        self.stack = stack  # [dtype, shape, offset, rows] of the stacked arrays, or None
        self.map: tp.Any = None
        self.trusted = False

    def mapped(self) -> tp.Any:
        if self.map is None:
            with self.path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.map = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else b""
            if self.stack is not None:
                np = _numpy_import()
                dtype, shape, offset, rows = self.stack
                count = rows * _prod(shape)
                block = np.frombuffer(self.map, dtype=np.dtype(dtype), count=count, offset=offset)
                self.stack = block.reshape((rows, *shape))
        return self.map

    def check_trusted(self) -> None:
        if not self.trusted:
            from .trust import check_trusted

            with self.path.open("rb") as f:
                check_trusted(f, self.path)
            self.trusted = True


def _numpy_import() -> tp.Any:
    import numpy

    return numpy


def _prod(shape: tp.Sequence[int]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


class ItemStore:
    """The items of one uid folder; one instance per folder and process (``ItemStore.get``)."""

    def __init__(self, folder: Path | str, readable: bool = True) -> None:
        self.readable = readable  # False: items there are not this config's to serve (no uid.yaml)
        self.folder = Path(folder)
        self.items = self.folder / ITEMS
        # key -> (batch number, kind, arg, time): atomic values only, so the GC stops tracking the
        # records (100,000 tracked records made each read's new objects cost a rescan of them)
        self.index: dict[str, tuple[tp.Any, ...]] = {}
        self.batches: dict[str, int] = {}
        self.batch_list: list[_Batch] = []
        self.offsets: dict[str, int] = {}  # index file -> bytes read
        self.lock = threading.Lock()
        self.writer: tuple[int, str] | None = None  # (pid, index file name): a forked child gets its own
        self.identity = _identity(self.folder)  # the folder this index was read from

    @classmethod
    def get(cls, folder: Path | str) -> ItemStore:
        """The process's store of this folder, read once; a folder removed (or replaced) since,
        e.g. by ``exca-hydra clear``, is read again from scratch: its items are gone."""
        key = os.fspath(folder)
        store = _STORES.get(key)
        if store is None or store.identity != _identity(Path(folder)):
            store = _STORES[key] = cls(folder)
            store.refresh()
        return store

    # ----- reading -----
    def refresh(self) -> int:
        """Read what the index files gained since the last call; the number of new keys."""
        if not self.readable:
            return 0
        try:
            names = [n for n in os.listdir(self.items) if n.startswith("index-") and n.endswith(".jsonl")]
        except FileNotFoundError:
            return 0
        before = len(self.index)
        for name in sorted(names):
            self._read_index(name)
        return len(self.index) - before

    def _read_index(self, name: str) -> None:
        start = self.offsets.get(name, 0)
        try:
            with open(self.items / name, "rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a last line without its newline is being written, or was cut
        collecting = gc.isenabled()
        gc.disable()  # many new containers and no garbage: collections here would only cost time
        try:
            self._parse(data[:end])
        finally:
            if collecting:
                gc.enable()
        self.offsets[name] = start + end

    def _parse(self, data: bytes) -> None:
        for line in data.splitlines():
            try:
                try:
                    parsed = _fast_loads(line)
                except ValueError:
                    parsed = json.loads(line)
                self._add(parsed)
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: only its batch is lost

    def _add(self, line: dict[str, tp.Any]) -> None:
        t = line["t"]
        if "forget" in line:
            for key in line["forget"]:
                old = self.index.get(key)
                if old is not None and old[3] <= t:
                    del self.index[key]
            return
        name = line["f"]
        batch = self.batches.get(name)
        if batch is None:
            batch = self.batches[name] = len(self.batch_list)
            self.batch_list.append(_Batch(self.items / name, line.get("s")))
        kinds, args, keys = line["k"], iter(line.get("x", ())), line["u"]
        index = self.index
        row = 0
        for key, kind in zip(keys, kinds):
            if kind == "r":
                record: tuple[tp.Any, ...] = (batch, "r", row, t)
                row += 1
            else:
                arg = next(args)
                if kind == "a":  # (dtype, shape, offset)
                    arg = (arg[0], tuple(arg[1]), arg[2])
                elif kind == "p":  # (offset, size)
                    arg = tuple(arg)
                record = (batch, kind, arg, t)
            if (kind == "r" and void((line.get("s") or [None])[0])) or (kind == "a" and void(record[2][0])):
                logger.warning("Item %r in %s was stored without its fields (a structured numpy array, by an "
                               "older version): it is computed again", key, self.items)  # fmt: skip
                continue
            old = index.get(key)
            if old is None or old[3] <= t:
                index[key] = record

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def missing(self, keys: tp.Iterable[str]) -> list[str]:
        index = self.index
        return [k for k in keys if k not in index]

    def reader(self) -> tp.Callable[[str], tp.Any]:
        """``read(key)``: the stored value (a KeyError names a key not in the index)."""
        index = self.index

        def read(key: str) -> tp.Any:
            record = index.get(key)
            if record is None:
                self.refresh()
                record = index.get(key)
                if record is None:
                    raise KeyError(f"Item {key!r} is not in the cache {self.items}")
            number, kind, arg, _ = record
            batch = self.batch_list[number]
            if kind == "j":  # a fresh container: a caller changing its output changes no later read
                return fresh(arg)
            try:
                if kind == "r":
                    if batch.map is None:
                        batch.mapped()
                    return batch.stack[arg]
                data = batch.map if batch.map is not None else batch.mapped()
                if kind == "a":
                    dtype, shape, offset = arg
                    np = _numpy_import()
                    return np.frombuffer(data, dtype=np.dtype(dtype), count=_prod(shape), offset=offset).reshape(shape)
            except (OSError, ValueError) as e:  # a batch file removed or cut short
                raise CacheError(f"Item {key!r} in {batch.path} is unreadable ({type(e).__name__}: {e}); "
                                 "recompute it with mode='force'") from e  # fmt: skip
            if kind == "p":
                if not batch.trusted:
                    batch.check_trusted()
                offset, size = arg
                try:
                    return pickle.loads(data[offset : offset + size])
                except Exception as e:
                    raise CacheError(f"Item {key!r} in {batch.path} is unreadable ({type(e).__name__}: {e}); "
                                     "recompute it with mode='force'") from e  # fmt: skip
            raise CacheError(f"Item {key!r} has an unknown storage kind {kind!r} in {self.items} (a newer version?)")

        return read

    # ----- writing -----
    def _writer(self) -> str:
        if self.writer is None or self.writer[0] != os.getpid():
            self.writer = (os.getpid(), f"index-{uuid.uuid4().hex[:12]}.jsonl")
        return self.writer[1]

    def write(self, pairs: tp.Sequence[tuple[str, tp.Any]], pickle_all: bool = False) -> None:
        """Store one batch of (key, value): the data file first, then its index line."""
        if not pairs:
            return
        self.items.mkdir(exist_ok=True)  # never the entry's folder: one removed meanwhile stays removed
        keys = [k for k, _ in pairs]
        kinds: list[str] = []
        args: list[tp.Any] = []
        chunks: list[bytes] = []
        size = 0
        # the most common array kind (dtype, shape) is stacked first, as rows
        stack_key = None if pickle_all else common_kind([v for _, v in pairs])
        stacked = [v for _, v in pairs if stack_key is not None and same_kind(v, stack_key)]
        stack = None
        if stacked:
            np = _numpy_import()
            block = np.ascontiguousarray(np.stack(stacked)).tobytes()
            assert stack_key is not None
            stack = [stack_key[0], list(stack_key[1]), 0, len(stacked)]
            chunks.append(block)
            size = len(block)
        for _, value in pairs:
            if stack_key is not None and same_kind(value, stack_key):
                kinds.append("r")
                continue
            if not pickle_all and array_kind(value) is not None:
                pad = -size % ALIGN
                chunks.append(b"\0" * pad)
                size += pad
                data = _numpy_import().ascontiguousarray(value).tobytes()
                kinds.append("a")
                args.append([value.dtype.str, list(value.shape), size])
            elif not pickle_all and is_jsonable(value):
                kinds.append("j")
                args.append(value)
                continue
            else:
                data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                kinds.append("p")
                args.append([size, len(data)])
            chunks.append(data)
            size += len(data)
        name = f"b-{uuid.uuid4().hex[:16]}.dat"
        _atomic_write_chunks(self.items / name, chunks)
        line: dict[str, tp.Any] = {"t": time.time(), "f": name, "u": keys, "k": "".join(kinds)}
        if stack is not None:
            line["s"] = stack
        if args:
            line["x"] = args
        self._append(line)

    def forget(self, keys: tp.Sequence[str]) -> None:
        """Forget items (force mode): a line that hides their earlier records."""
        if keys:
            self.items.mkdir(exist_ok=True)  # never the entry's folder: one removed meanwhile stays removed
            self._append({"t": time.time(), "forget": list(keys)})

    def _append(self, line: dict[str, tp.Any]) -> None:
        text = json.dumps(line, separators=(",", ":"), allow_nan=False)
        data = (text + "\n").encode("utf8")
        with self.lock:
            name = self._writer()
            fd = os.open(self.items / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, data)  # one write: a crash leaves a line whole or cut (ignored)
                os.fsync(fd)
            finally:
                os.close(fd)
            if "j" in line.get("k", ""):  # the index's own values, not the objects the caller gets
                line = {**line, "x": [fresh(arg) for arg in line.get("x", ())]}
            self._add(line)

    # ----- for the command line: nothing is read but the index -----
    def summary(self) -> tuple[int, int, int]:
        """(items, bytes on disk, files) of this folder's store."""
        self.refresh()
        total = files = 0
        try:
            for name in os.listdir(self.items):
                try:
                    total += os.stat(self.items / name).st_size
                    files += 1
                except FileNotFoundError:
                    pass
        except FileNotFoundError:
            pass
        return len(self.index), total, files


def _identity(folder: Path) -> tuple[int, int] | None:
    """The entry's uid.yaml, written once when the entry is made: a cleared and remade entry has
    another (its inode may be reused, not its write time)."""
    try:
        st = os.stat(folder / UID_CONFIG)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _atomic_write_chunks(path: Path, chunks: tp.Sequence[bytes]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_item_folder(folder: Path) -> bool:
    return (folder / ITEMS).is_dir()


def summarize(folder: Path) -> str | None:
    """``"N items, S"`` of a MapInfra folder (None for another entry); reads the index only."""
    if not is_item_folder(folder):
        return None
    items, size, _ = ItemStore(folder).summary()
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000  # type: ignore[assignment]
    return f"{items} item{'' if items == 1 else 's'}, {size:.3g} {unit}"
