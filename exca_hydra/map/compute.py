"""Computing a MapInfra call's missing items: claim them, split them into jobs, run the jobs on
the engine's backends (here, threads, forked processes, submitit, Slurm pull workers), wait for
the items other processes hold, and raise one error naming the failed items."""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import sys
import time
import typing as tp
import uuid
from pathlib import Path

from ..cache.itemclaims import ItemClaims
from ..cache.errors import CacheNotWritable
from ..cache.itemstore import ItemStore
from ..execution import engine
from ..workdir import submitting_from
from ..execution.backends import InlineBackend
from .batch import ItemFailure, MapBatch, MapItemError, ThreadBackend, to_chunks

logger = logging.getLogger("exca_hydra.map")
Pairs = tp.List[tp.Tuple[str, tp.Any]]


class Progress:
    """Items done: a tqdm bar on a terminal, a log line at most every few seconds otherwise."""

    def __init__(self, total: int, name: str, every: float = 5.0) -> None:
        self.total, self.name, self.every = total, name, every
        self.done = 0
        self.last = time.time()
        self.bar: tp.Any = None
        if total > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc=name, leave=False)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.time() - self.last >= self.every:
            self.last = time.time()
            logger.info("%s: %d/%d items computed", self.name, self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def compute(infra: tp.Any, pairs: Pairs) -> dict[str, tp.Any]:
    """Compute the (key, item) pairs; returns the outputs only without a cache folder (else they
    are in the item store). Keys another process holds are waited for, then taken if still missing."""
    binding = infra._binding()
    folder = infra.uid_folder()
    name = f"{type(binding.obj).__name__}.{binding.method.__name__}"
    progress = Progress(len(pairs), name)
    failures: list[ItemFailure | str] = []
    outputs: dict[str, tp.Any] = {}
    try:
        if folder is None:
            _run(infra, None, pairs, progress, failures, outputs)
        else:
            _compute_claimed(infra, ItemStore.get(folder), pairs, progress, failures)
    finally:
        progress.close()
    if failures:
        _raise(failures, len(pairs))
    return outputs


def _compute_claimed(infra: tp.Any, store: ItemStore, pairs: Pairs, progress: Progress,
                     failures: list[ItemFailure | str]) -> None:  # fmt: skip
    claims = ItemClaims(store.folder)
    todo = pairs
    delay = 0.1
    while todo:
        try:
            try:
                mine, others = claims.take([k for k, _ in todo])
            except OSError as e:  # e.g. a read-only cache: what it holds is served, a miss cannot be computed
                raise CacheNotWritable(
                    f"Cannot compute {len(todo)} missing item(s) in {store.folder}: the cache folder is not "
                    f"writable ({e.strerror or e}); mode='read-only' serves the items it holds without computing"
                ) from e
            if mine:
                store.refresh()  # the previous holder of a key may have just stored it
                keys = set(store.missing(mine))
                run = [(k, item) for k, item in todo if k in keys]
                if len(run) < len(mine):
                    progress.advance(len(mine) - len(run))
                _run(infra, store, run, progress, failures, None)
        finally:
            claims.release()
        if not others:
            return
        if mine or delay == 0.1:
            logger.info("Waiting for %d item(s) another process computes", len(others))
        waiting = set(others)
        while True:  # until the others' keys are stored, or no longer held (their holder failed or died)
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
            store.refresh()
            stored = waiting - set(store.missing(waiting))
            progress.advance(len(stored))
            waiting -= stored
            if not waiting:
                return
            if not waiting & claims.held():
                break
        todo = [(k, item) for k, item in todo if k in waiting]


def _run(infra: tp.Any, store: ItemStore | None, pairs: Pairs, progress: Progress,
         failures: list[ItemFailure | str], outputs: dict[str, tp.Any] | None) -> None:  # fmt: skip
    if not pairs:
        return
    binding = infra._binding()
    cluster = infra.cluster
    fork_folder: Path | None = None
    in_process = cluster in (None, "threadpool")
    backend: tp.Any
    if cluster is None or len(pairs) == 1 and cluster in ("threadpool", "processpool"):
        chunks, backend = [pairs], InlineBackend()
        in_process = True
    elif cluster in ("threadpool", "processpool"):
        workers = min(len(pairs), max(1, (os.cpu_count() or 1) - 1), infra.max_jobs or len(pairs))
        chunks = to_chunks(pairs, 3 * workers)
        if cluster == "threadpool" or store is None:
            backend = ThreadBackend(workers)
        else:
            from ..execution.fork import ForkBackend

            fork_folder = store.folder / f".fork-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            backend = ForkBackend(fork_folder, limit=workers)
    else:
        chunks = to_chunks(pairs, infra.max_jobs, infra.min_samples_per_job)
        backend = _submitit_backend(infra, len(chunks))
    folder = None if store is None else str(store.folder)
    batch = MapBatch(binding.obj, binding.name, folder, chunks, pickle_all=binding.spec.cache_type == "Pickle",
                     skip_done=not in_process)  # fmt: skip
    if in_process:
        batch.progress = progress.advance
    tasks = [[i] for i in range(len(chunks))]
    workdir = infra.workdir
    code = None
    if workdir is not None and cluster not in (None, "threadpool", "processpool") and infra.folder is not None:
        code = Path(infra.folder) / "code" / getpass.getuser()  # (one per user, as TaskInfra's)
    try:
        with submitting_from(workdir, code, backend):
            handles = backend.submit(batch, tasks)
        if not in_process:
            ids = sorted({str(h.job_id) for h in handles})
            logger.info("Sent %d items into %d job(s) on %s (e.g. %s)", len(pairs), len(chunks), cluster, ids[0])

        def on_end(index: int, outcome: engine.Outcome) -> None:
            if outcome.lost is not None:
                first = chunks[index][0][0]
                failures.append(f"job {index} ({len(chunks[index])} items from key {first!r}) was lost: {outcome.lost}")
                return
            value = outcome.value
            if not isinstance(value, dict):  # the job side raised: its error is its own message
                failures.append(f"job {index} ({len(chunks[index])} items) ended with {value!r}")
                return
            if not in_process:
                progress.advance(value["done"])
            if value["failure"] is not None:
                failures.append(value["failure"])
            if value.get("unwritten"):
                failures.append(f"job {index}: {value['unwritten']}")
            if outputs is not None:
                outputs.update(zip((k for k, _ in chunks[index]), value["outputs"]))

        engine.collect(backend, handles, tasks, on_end)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        if fork_folder is not None:
            shutil.rmtree(fork_folder, ignore_errors=True)


def _submitit_backend(infra: tp.Any, jobs: int) -> tp.Any:
    from ..execution.options import slurm_options
    from ..execution.pull import slurm_backend

    binding = infra._binding()
    logs = Path(infra.logs.format(folder=infra.uid_folder(), user=getpass.getuser()))
    options = slurm_options(infra)
    options.slurm_array_parallelism = max(1, min(options.slurm_array_parallelism, jobs))
    name = infra.job_name or f"{type(binding.obj).__name__}.{binding.method.__name__}"
    return slurm_backend(None if infra.cluster == "auto" else infra.cluster, logs, infra, options, name=name)


def _raise(failures: list[ItemFailure | str], total: int) -> tp.NoReturn:
    lines = [f.message() if isinstance(f, ItemFailure) else f for f in failures]
    first = failures[0]
    text = lines[0] if len(lines) == 1 else f"{len(lines)} job(s) failed:\n" + "\n".join(f"- {line}" for line in lines[:10])
    text += "\n(the items of the other batches are kept; the failed ones are computed again on the next call)"
    if isinstance(first, ItemFailure) and first.traceback:
        text += f"\n--- traceback of item {first.item} ---\n{first.traceback.rstrip()}"
    error = MapItemError(text)
    cause = first.exception if isinstance(first, ItemFailure) else None
    raise error from cause
