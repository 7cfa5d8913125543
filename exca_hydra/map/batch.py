"""The job side of a MapInfra computation: each job runs the method over its chunk of items and
writes the outputs to the item store in batches (so a crash loses at most the batch in hand).
A failing item ends its job: the items yielded before it are stored, the failure names it."""

from __future__ import annotations

import math
import os
import pickle
import sys
import threading
import time
import traceback
import typing as tp
from concurrent import futures

from ..cache.host import hostname, process_alive, start_time
from ..cache.itemstore import ItemStore

FLUSH_EVERY_S = 30.0  # a long computation writes what it has at least this often
FLUSH_BYTES = 256 * 1024**2


class ItemFailure(tp.NamedTuple):
    """Why a job stopped: the item being computed (its key and repr) and the error."""

    key: str
    item: str
    error: str
    traceback: str
    exception: BaseException | None  # the exception itself when it crossed a process boundary intact

    def message(self) -> str:
        return f"MapInfra item {self.item} (key {self.key!r}) failed: {self.error}"


class MapItemError(RuntimeError):
    """An item's computation failed (the other batches' items are kept)."""


def to_chunks(items: list[tp.Any], max_chunks: int | None, min_items: int = 1) -> list[list[tp.Any]]:
    """At most ``max_chunks`` chunks of at least ``min_items`` items (the last may be smaller)."""
    if not items:
        return []
    splits = min(len(items) if max_chunks is None else max_chunks, math.ceil(len(items) / max(1, min_items)))
    per = math.ceil(len(items) / max(1, splits))
    return [items[k * per : (k + 1) * per] for k in range(math.ceil(len(items) / per))]


class MapBatch:
    """The engine's Batch for one MapInfra call: job i computes chunk i."""

    checkpointable = False

    def __init__(self, obj: tp.Any, infra_name: str, folder: str | None, chunks: list[list[tuple[str, tp.Any]]],
                 pickle_all: bool = False, skip_done: bool = True) -> None:  # fmt: skip
        self.obj = obj
        self.infra_name = infra_name
        self.folder = folder  # the uid folder (None: no cache, outputs are returned)
        self.chunks = chunks
        self.pickle_all = pickle_all
        self.skip_done = skip_done  # a job started late may find items another job stored meanwhile
        self.progress: tp.Callable[[int], None] | None = None  # in this process only
        me = os.getpid()
        self.launcher = (hostname(), me, start_time(me))  # the item claims are this process's

    def __len__(self) -> int:
        return len(self.chunks)

    def setup(self) -> None:
        pass

    def method(self) -> tp.Callable[..., tp.Iterator[tp.Any]]:
        return type(self.obj).__exca_infras__[self.infra_name][0]  # type: ignore[no-any-return]

    def run(self, index: int, job_id: str) -> dict[str, tp.Any]:
        """Compute chunk ``index``; returns {"done": n, "failure": ItemFailure | None, "outputs": ...,
        "unwritten": why none or not all were stored: the store could not take them (a full disk),
        or the outputs do not match the items | None}."""
        if os.environ.get("SUBMITIT_EXECUTOR") == "local":
            _end_with_launcher(*self.launcher)
        chunk = self.chunks[index]
        store = ItemStore.get(self.folder) if self.folder is not None else None
        if store is not None and self.skip_done:
            missing = set(store.missing(k for k, _ in chunk))
            chunk = [(k, item) for k, item in chunk if k in missing]
        out = run_chunk(self.method(), self.obj, chunk, store, self.pickle_all, self.progress)
        failure = out["failure"]
        if failure is not None and failure.exception is not None:
            try:  # the outcome may cross a process boundary: keep the exception only if it can
                pickle.loads(pickle.dumps(failure.exception))
            except Exception:  # noqa: BLE001
                out["failure"] = failure._replace(exception=None)
        return out

    # the method is found again through the class (its name holds the caching wrapper)
    def __getstate__(self) -> dict[str, tp.Any]:
        from ..execution.worker import ImportPath, script_dir

        state = dict(self.__dict__)
        state["progress"] = None
        return {"import_path": ImportPath(script_dir()), **state}

    def __setstate__(self, state: dict[str, tp.Any]) -> None:
        state.pop("import_path", None)
        self.__dict__.update(state)


def run_chunk(method: tp.Callable[..., tp.Iterator[tp.Any]], obj: tp.Any, chunk: list[tuple[str, tp.Any]],
              store: ItemStore | None, pickle_all: bool,
              progress: tp.Callable[[int], None] | None) -> dict[str, tp.Any]:  # fmt: skip
    pulled: list[int] = [0]

    def items() -> tp.Iterator[tp.Any]:
        for _, item in chunk:
            pulled[0] += 1
            yield item

    pending: list[tuple[str, tp.Any]] = []
    outputs: list[tp.Any] = []
    done = 0
    last = time.time()
    size = 0
    failure = None
    unwritten = None  # the store's failure (e.g. a full disk): not an item's

    def write(pairs: list[tuple[str, tp.Any]]) -> None:
        try:
            store.write(pairs, pickle_all)  # type: ignore[union-attr]
        except OSError as e:
            why = e.strerror or str(e)
            if not store.folder.exists():  # type: ignore[union-attr]
                why = "the cache entry was removed while they were computed (exca-hydra clear?); call again to compute them"
            raise _Unwritten(f"could not store {len(pairs)} item(s) in {store.items}: {why}") from e  # type: ignore[union-attr]

    try:
        for output in method(obj, items()):
            if done + len(pending) >= len(chunk):
                raise _Misaligned(f"more outputs than its {len(chunk)} items")
            key = chunk[done + len(pending)][0]
            pending.append((key, output))
            size += getattr(output, "nbytes", 64)
            if progress is not None:
                progress(1)
            if store is not None and (size >= FLUSH_BYTES or time.time() - last >= FLUSH_EVERY_S):
                write(pending)
                done, pending, size, last = done + len(pending), [], 0, time.time()
        if done + len(pending) != len(chunk):
            raise _Misaligned(f"{done + len(pending)} outputs for its {len(chunk)} items")
    except _Unwritten as e:
        unwritten, pending = str(e), []
    except _Misaligned as e:  # which output is whose is unknown: none of this job's is kept
        if store is not None and done:
            store.forget([key for key, _ in chunk[:done]])
        unwritten, pending, done = (f"the method did not yield exactly once per item ({e}): which output belongs "
                                    f"to which item is unknown, so none of this job's {len(chunk)} items is kept"), [], 0  # fmt: skip
    except Exception as e:
        position = min(done + len(pending), len(chunk) - 1) if chunk else 0
        key, item = chunk[position] if chunk else ("", None)
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        failure = ItemFailure(key, _short(item), f"{type(e).__name__}: {e}",
                              "".join(traceback.format_exception(type(e), e, tb)), e)  # fmt: skip
    if store is not None and unwritten is None:
        try:
            write(pending)  # what was computed before a failure is sound
        except _Unwritten as e:
            unwritten, pending = str(e), []
    elif store is None:
        outputs = [value for _, value in pending]
    return {"done": done + len(pending), "failure": failure, "outputs": outputs, "unwritten": unwritten}


def _end_with_launcher(host: str, pid: int, start: str) -> None:
    """A local job outliving its launcher (killed): the launcher's item claims are gone, so the
    next call takes the items and would compute them a second time; the job stops instead."""

    def watch() -> None:
        while process_alive(host, pid, start) is not False:
            time.sleep(0.5)
        sys.stderr.write(f"The launching process {pid} ended: this job stops (its items not yet stored are "
                         "computed by the next call)\n")  # fmt: skip
        sys.stderr.flush()
        os._exit(1)

    threading.Thread(target=watch, name="exca-launcher-watch", daemon=True).start()


class _Unwritten(Exception):
    pass


class _Misaligned(Exception):
    pass


def _short(item: tp.Any) -> str:
    try:
        text = repr(item)
    except Exception:  # noqa: BLE001 - a repr that fails must not hide the item's own error
        text = f"<{type(item).__name__}>"
    return text if len(text) <= 200 else text[:197] + "..."


class ThreadHandle:
    job_id = "thread"

    def __init__(self, future: futures.Future[tp.Any]) -> None:
        self.future = future

    def returns(self) -> list[tp.Any]:
        return [self.future.result()]

    def ref(self) -> None:
        return None


class ThreadBackend:
    """``cluster="threadpool"``: the engine's backend interface over a thread pool."""

    def __init__(self, workers: int) -> None:
        self.pool = futures.ThreadPoolExecutor(max_workers=max(1, workers))

    def submit(self, batch: tp.Any, tasks: tp.Sequence[tp.Sequence[int]]) -> list[ThreadHandle]:
        return [ThreadHandle(self.pool.submit(batch.run, task[0], "thread")) for task in tasks]

    def ended(self, handles: tp.Sequence[ThreadHandle]) -> list[bool]:
        return [h.future.done() for h in handles]

    def pause(self, delay: float) -> None:
        time.sleep(min(delay, 0.05))

    def cancel(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
