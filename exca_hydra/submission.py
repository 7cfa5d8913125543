"""Python API jobs through the engine: claim, record the configs, then run here or submit one
array with the base infra's resources, and record each job's reference."""

from __future__ import annotations

import getpass
import typing as tp

from .cache.digest import field_digests
from .cache.errors import CacheError
from .cache.layout import class_program
from .cache.uid import uid_string
from .execution import engine
from .execution.plan import Step
from .workdir import submitting_from
from .execution.worker import MethodBatch


def submit(base: tp.Any, infras: tp.Sequence[tp.Any], steps: tp.Sequence[Step], max_workers: int | None = None) -> list[tp.Any]:
    """Claim, record the configs, run here or submit one array with base's resources. A config
    another process claimed is waited for, not run twice. Returns each config's job (None: none here)."""
    jobs: list[tp.Any] = [None] * len(infras)
    for infra in infras:
        infra._binding().computed = True
        unchanged(infra)
    with engine.claimed(steps) as positions:
        if not positions:
            return jobs
        for p in positions:
            program = class_program(type(infras[p]._binding().obj))  # a script's class: its file
            binding = infras[p]._binding()
            digests = field_digests(binding.obj, binding.exclude)
            infras[p]._entry().write_configs(infras[p].config(), infras[p].config(uid=True), program, digests)  # type: ignore[union-attr]
        backend = base.backend(max_workers)  # inside the claim: a bad option releases it
        calls = [(infras[p]._binding().method, infras[p]._binding().obj, infras[p]._entry()) for p in positions]
        workdir = base.workdir
        # (one snapshot folder per user: only its owner may write it, and a cache may be shared)
        code = base.folder / "code" / getpass.getuser() if base.folder else None
        with submitting_from(workdir, code, backend, [base.folder]):
            handles = backend.submit(MethodBatch(calls), [[i] for i in range(len(positions))])  # type: ignore[arg-type]
        for p, handle in zip(positions, handles):
            ref = handle.ref()
            entry = infras[p]._entry()
            if ref is not None and entry is not None:
                entry.write_job(ref)  # job.json now says what the claim said
            job: tp.Any = getattr(handle, "job", None)
            if job is None and entry is not None and cluster_job(handle):  # a pull worker's job
                job = engine.EntryJob(entry)
                job.job_id = handle.job_id
            jobs[p] = job
            if type(job).__name__ == "DebugJob":  # cluster="debug": runs here, now, under the claim
                try:
                    job.done()
                except Exception:  # recorded in the entry by the job side
                    pass
    return jobs


def unchanged(infra: tp.Any) -> None:
    """A config is frozen once its uid is computed, but a list or dict inside it can still be
    changed in place: its result would go to the folder of the uid it had."""
    if infra.uid() != uid_string(infra.config(uid=True)):
        raise CacheError(
            f"{type(infra._binding().obj).__name__}'s config changed after its uid ({infra.uid()}) was computed: "
            "a list or dict inside it was changed in place. Configs are frozen once their uid is computed: "
            "build another one (clone_obj) instead of changing it."
        )


def cluster_job(handle: tp.Any) -> bool:
    return type(handle).__name__ == "PullHandle"
