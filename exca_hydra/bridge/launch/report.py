"""What the user sees of a sweep: a progress display while it runs, one summary table at the
end (cached jobs included), and one error listing every failed job."""

from __future__ import annotations

import collections
import logging
import sys
import time
import typing as tp

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException

from ...cache.store import ERROR_TEXT
from .hydra_job import job_traceback
from .jobs import HydraJob

logger = logging.getLogger("exca_hydra.launcher")


class Progress:
    """A bar redrawn in place on a terminal (tqdm), from the first update on; plain log lines,
    at most every ``every`` seconds, otherwise. ``write`` shows the jobs' output above the bar."""

    def __init__(self, total: int, stream: tp.TextIO | None = None, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.last = 0.0
        self.bar: tp.Any = None
        self.tty = self.stream.isatty()

    def update(self, done: int, failed: int, running: int, why_pending: str = "") -> None:
        pending = self.total - done - running
        if self.tty and self.bar is None and done < self.total:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="job", desc="sweep", leave=False, file=self.stream)
            except ImportError:
                self.tty = False
        if self.bar is not None:
            self.bar.n = done
            extra = {"why": why_pending} if pending and why_pending else {}
            self.bar.set_postfix(failed=failed, running=running, pending=pending, **extra)
            if done == self.total:
                self.bar.close()
                self.bar = None
            return
        now = time.time()
        if now - self.last >= self.every or done == self.total:
            self.last = now
            why = f" ({why_pending})" if pending and why_pending else ""
            logger.info(
                "Progress: %d/%d done, %d failed, %d running, %d pending%s",
                done, self.total, failed, running, pending, why,
            )  # fmt: skip

    def write(self, text: str, to_stderr: bool = False) -> None:
        """Job output: whole lines, above the bar (which is cleared, then drawn again below)."""
        stream = sys.stderr if to_stderr else sys.stdout
        if self.bar is not None:
            self.bar.clear()
        stream.write(text)
        stream.flush()
        if self.bar is not None:
            self.bar.refresh()


def _outcome(ret: JobReturn | None) -> str:
    """The result, or the error's line (as a traceback's last line shows it), in one short line.
    Reading a cached result loads it (and drops it); one that cannot be loaded fails its job."""
    if ret is None:
        return "?"
    if ret.status == JobStatus.UNKNOWN:
        return "(on Slurm, not waited for)"
    value = ret._return_value
    try:
        if isinstance(value, BaseException):
            text = f"{type(value).__name__}: {value}"
        elif isinstance(value, (str, bytes, bytearray)):
            text = repr(value[:61])  # not a copy of a big result
        else:
            text = repr(value)
    except Exception as e:  # a result's own __repr__ (or an error's __str__) may fail
        text = f"<{type(value).__name__}: its repr failed: {type(e).__name__}>"
    return _fit((text.strip().splitlines() or [""])[0], 60)  # an error's first line is its "Type: message"


def _recorded(job: HydraJob) -> dict[str, tp.Any] | None:
    """The job's outcome.json when it records the job's status (a small JSON, read once)."""
    if job.entry is None or job.result is None:
        return None
    data = job.entry.read_outcome()
    status = "completed" if _ok(job) else "failed"
    return data if data is not None and data.get("status") == status else None


def _preview(job: HydraJob, recorded: dict[str, tp.Any] | None) -> str:
    """The preview outcome.json holds, when the result file is the one it describes; else the
    result itself (loading a truncated or foreign file fails its job, as it should)."""
    intact = job.entry is not None and job.entry.result_intact(recorded)
    if recorded is not None and "preview" in recorded and _ok(job) and intact:
        from ...table import describe_preview

        return _fit(describe_preview(recorded["preview"]).replace("\n", " "), 60)
    return _outcome(job.result)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_uid(uid: str | None, width: int = 60) -> str:
    """The uid, shortened in the middle: its trailing hash is what tells two folders apart."""
    if not uid:
        return "-"
    if len(uid) <= width:
        return uid
    head, sep, digest = uid.rpartition("-")
    tail = sep + digest if head else uid[-16:]
    return uid[: max(1, width - len(tail) - 1)] + "…" + tail


def best_line(jobs: tp.Sequence[HydraJob], recorded: dict[int, tp.Any], best: str | None) -> str | None:
    """The best job, from the previews: by ``best`` ("max:result.accuracy"), or, when every
    completed result is a number, the highest and the lowest (which is better is not guessed)."""
    from ...table import preview_columns

    values: list[tuple[float, HydraJob]] = []
    column = best.partition(":")[2] if best else "result"
    seen: dict[str, None] = {}  # the result columns the completed jobs have
    for job in jobs:
        data = recorded.get(id(job))
        if not _ok(job):
            continue
        if data is not None and "preview" in data:
            shown = data["preview"]
        elif job.result is not None and "_return_value" in vars(job.result):  # in memory: not cached
            shown = vars(job.result)["_return_value"]
        else:
            continue
        columns = preview_columns(shown)
        seen.update(dict.fromkeys(columns))
        value = columns.get(column)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value == value:  # NaN never wins, and does not make the others "not numbers"
                values.append((value, job))
        elif best is None:
            return None  # not all numbers: no line unless asked
    if best and not values and seen:  # a misspelt key must not pass in silence
        return f"best ({best}): no completed job has a number at {column}; their result columns: {', '.join(seen)}"
    if not values or (best is None and len(values) < 2):
        return None
    name = lambda job: f"#{job.num} ({_fit(job.shown_overrides or 'no overrides', 60)})"  # noqa: E731
    high = max(values, key=lambda pair: pair[0])
    low = min(values, key=lambda pair: pair[0])
    if best:
        value, job = high if best.startswith("max:") else low
        return f"best ({best}): {name(job)} {column}={value:.6g}"
    return f"highest result: {name(high[1])} {high[0]:.6g}; lowest: {name(low[1])} {low[0]:.6g}"


def summary(jobs: tp.Sequence[HydraJob], best: str | None = None) -> str:
    """End-of-sweep table: number, status, time (or "cached"), uid, overrides, result or the
    error's last line; then where the results are. Past 50 jobs, only those not completed."""
    # the outcomes as outcome.json previews them: a result is unpickled only when asked for
    recorded = {id(job): _recorded(job) for job in jobs}
    outcomes = {id(job): _preview(job, recorded[id(job)]) for job in jobs if len(jobs) <= 50 or job.from_cache or not _ok(job)}
    counts = collections.Counter(
        "cached" if job.from_cache and _ok(job) else "completed" if _ok(job) else "submitted" if _submitted(job) else "failed"
        for job in jobs
    )
    head = f"Sweep summary: {len(jobs)} job(s): " + ", ".join(
        f"{counts[k]} {k}" for k in ("completed", "cached", "failed", "submitted") if counts[k]
    )
    if counts["submitted"]:
        head += " (not waited for, hydra.launcher.wait=false: re-run the same command to collect them)"
    shown = list(jobs)
    if len(shown) > 50:  # a long sweep: list the others only
        shown = [job for job in jobs if not _ok(job)]
        head += "; not completed:" if shown else ""
    rows = []
    for job in shown:
        status = "SUBMITTED" if _submitted(job) else job.result.status.name if job.result is not None else "?"
        took = (recorded[id(job)] or {}).get("duration")  # the job's own time (a pull worker's job too)
        took = took if isinstance(took, (int, float)) else (job.ended - job.started if job.ended else None)
        seconds = "cached" if job.from_cache else f"{took:.1f}s" if took is not None else "-"
        overrides = _fit(job.shown_overrides or "(no overrides)", 40)
        rows.append((str(job.num), status, seconds, _short_uid(job.uid), overrides, outcomes[id(job)]))
    lines = [head]
    if rows:
        titles = ("#", "status", "time", "uid", "overrides", "result")
        widths = [max(len(title), *(len(row[i]) for row in rows)) for i, title in enumerate(titles)]
        for row in [titles, *rows]:
            cells = [cell.rjust(w) if i in (0, 2) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
    line = best_line(jobs, recorded, best)
    if line:
        lines.append(line)
    # only folders that exist: a job that wrote nothing names none
    written = [job.entry.folder for job in jobs if job.entry is not None and job.entry.folder.is_dir()]
    folders = sorted({str(folder.parent) for folder in written})
    if folders:
        lines.append("results: " + ", ".join(f"{folder}/<uid>" for folder in folders))
    elif all(job.entry is None for job in jobs):
        lines.append("results: not cached")
    return "\n".join(lines)


def _ok(job: HydraJob) -> bool:
    return job.result is not None and job.result.status == JobStatus.COMPLETED


def _submitted(job: HydraJob) -> bool:
    """Submitted and not waited for: Hydra's "result not yet available"."""
    return job.result is not None and job.result.status == JobStatus.UNKNOWN


SHOWN_FAILURES = 20  # past this, the summary table lists the rest


class SweepFailed(CompactHydraException):
    """Some jobs failed: each with its overrides, its error and where its traceback is, then the
    first one's traceback (the task's own frames, as the job recorded them)."""

    def __init__(self, failed: tp.Sequence[HydraJob], total: int) -> None:
        lines = [f"{len(failed)} of {total} job(s) failed (the other jobs' results are kept):"]
        first_traceback = ""
        for job in failed[:SHOWN_FAILURES]:
            error = job.result._return_value if job.result is not None else None
            lines.append(f"  #{job.num} : {job.shown_overrides or '(no overrides)'}")
            lines.extend(f"      {line}" for line in f"{type(error).__name__}: {error}".splitlines())
            text = job_traceback(job)  # a killed job left none: its error names its log
            if job.entry is not None and job.entry.error_text():
                lines.append(f"      traceback: {job.entry.path(ERROR_TEXT)}")
            if text:
                first_traceback = first_traceback or f"Traceback of job #{job.num}:\n{text}"
        if len(failed) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(failed) - SHOWN_FAILURES} more (the summary above lists them)")
        if first_traceback:
            lines.append(first_traceback)
        lines.append("hydra.sweeper.mode=retry runs the failed jobs again.")
        super().__init__("\n".join(lines))
        self.jobs = list(failed)


class SweepStopped(CompactHydraException):
    """The sweep cannot go on (e.g. a cache folder it cannot write to): a message, no traceback."""
