"""Jobs of a launch that do not run: cached ones (read back here, a folder each) and the ones a
stop leaves (Ctrl-C, fail_fast, wait=false), with the one message that says what is left and how
to go on."""

from __future__ import annotations

import contextlib
import logging
import typing as tp
from pathlib import Path

from omegaconf import OmegaConf

from hydra.core.utils import JobReturn, JobStatus

from ...execution import engine
from .hydra_job import HydraBatch, cached_return, job_traceback
from .jobs import HydraJob, task_yaml

logger = logging.getLogger("exca_hydra.launcher")


def cached_folder(folder: Path, job: HydraJob) -> None:
    """What run_job would write of a job that did not run (its overrides, its task's config),
    and the entry that holds its result; a few files, not a Hydra job (~2 ms each)."""
    import yaml

    hydra_dir = folder / ".hydra"
    try:
        hydra_dir.mkdir(parents=True, exist_ok=True)
        (hydra_dir / "config.yaml").write_text(job.config_text if job.config_text is not None else task_yaml(job.config))
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        (hydra_dir / "overrides.yaml").write_text(yaml.dump(list(job.overrides), Dumper=dumper))
        (hydra_dir / "cache_entry.txt").write_text(f"{job.entry.folder}\n" if job.entry is not None else "-\n")
    except OSError as e:
        logger.warning("Could not write the folder of cached job #%d (%s): %s", job.num, folder, e)


def read_here(launcher: tp.Any, jobs: tp.Sequence[HydraJob]) -> None:
    """Cached jobs under a sweeper that needs a run per job: each goes through Hydra's run_job in
    this process (its job folder and .hydra/), which reads its result back from the cache."""
    batch = HydraBatch(launcher.hydra_context, launcher.task_function, jobs)
    batch.load = False  # the value stays in the entry until read
    for index, job in enumerate(jobs):
        job.result = batch.run(index, f"cached_{job.num}")
        job.from_cache = True
        output = OmegaConf.select(job.result.hydra_cfg, "hydra.runtime.output_dir") if job.result.hydra_cfg else None
        if job.entry is not None and output:
            with contextlib.suppress(OSError):
                (Path(output) / ".hydra" / "cache_entry.txt").write_text(f"{job.entry.folder}\n")


class FailFast(Exception):
    def __init__(self, job: HydraJob) -> None:
        super().__init__(f"job #{job.num} failed")
        self.job = job


def interrupted(launcher: tp.Any, left: tp.Sequence[HydraJob], handles: tp.Sequence[tp.Any]) -> str:
    """Ctrl-C: one message instead of a traceback: what is left, where, how to go on or stop."""
    sweep = launcher.config.hydra.sweep.dir
    if launcher.cluster != "slurm":
        return (f"Interrupted: {len(left)} local job(s) stopped, nothing recorded for them. "
                f"Re-run the same command to compute them (what finished is cached). Sweep: {sweep}")  # fmt: skip
    arrays = sorted({str(h.job_id).split("_")[0] for h in handles if getattr(h, "job_id", "?") not in ("?", "")})
    return (f"Interrupted: {len(left)} job(s) still queued or running on Slurm (job arrays {', '.join(arrays) or '?'}); "
            f"their results still reach the cache. Re-run the same command to wait for them (nothing is submitted "
            f"twice), or cancel them: scancel {' '.join(arrays)}. Sweep: {sweep}")  # fmt: skip


def note_job_traceback(job: HydraJob) -> None:
    """The error came from another process, without its frames: Hydra's sweeper re-raises it
    here, so add the task's traceback (the job's error.txt, or as it sent it) as a note."""
    if job.result is None or job.result.status != JobStatus.FAILED:
        return
    error, text = job.result._return_value, job_traceback(job)
    note = f"Job #{job.num} ({job.shown_overrides}); its traceback:\n{text}"
    if not text:
        return
    if hasattr(error, "add_note"):  # Python 3.11+: shown under the exception Hydra re-raises
        if note not in getattr(error, "__notes__", ()):
            error.add_note(note)
    else:  # Python 3.10 shows no notes: said before Hydra re-raises it
        import sys

        sys.stderr.write(note.rstrip("\n") + "\n")


def not_waited_return(job: HydraJob) -> JobReturn:
    """A job submitted and not waited for (``hydra.launcher.wait=false``): Hydra's status for a
    result "not yet available" (reading ``return_value`` asserts); a re-run collects it."""
    return JobReturn(overrides=list(job.overrides), status=JobStatus.UNKNOWN)


def not_waited(launcher: tp.Any, jobs: tp.Sequence[HydraJob], handles: tp.Sequence[tp.Any]) -> str:
    """``hydra.launcher.wait=false``: what was submitted, where the results go, how to collect."""
    arrays = sorted({str(h.job_id).split("_")[0] for h in handles if str(getattr(h, "job_id", "?"))[:1].isdigit()})
    folders = sorted({str(job.entry.folder.parent) for job in jobs if job.entry is not None})
    where = f"their results go to {', '.join(f + '/<uid>' for f in folders)}" if folders else "nothing is cached (no cache folder)"
    return (f"Submitted {len(jobs)} job(s) to Slurm (job arrays {', '.join(arrays) or '?'}) and not waiting for them "
            f"(hydra.launcher.wait=false); {where}. Re-run the same command to collect them: finished jobs are read "
            f"from the cache, the others waited for (or, with wait=false, listed), nothing is submitted twice; "
            f"squeue -j {','.join(arrays)} shows them, scancel {' '.join(arrays)} cancels them.")  # fmt: skip


def wait_for_others(jobs: tp.Sequence[HydraJob]) -> None:
    """Jobs another process is computing: wait for their outcome in the cache."""
    waiting = [job for job in jobs if job.entry is not None]
    for job, (status, failure) in zip(waiting, engine.wait_for([job.entry for job in waiting])):  # type: ignore[misc]
        assert job.step is not None
        job.step.status, job.step.failure = status, failure
        if failure is not None:  # seen ending without a result (scancel, a lost worker): recorded,
            engine.record_lost(job.entry, failure)  # so the cache tool reads it failed, as the sweep says
        job.result = cached_return(job, "the process computing it stopped without a result")
        job.from_cache = status != "not submitted"  # computed by the other process
