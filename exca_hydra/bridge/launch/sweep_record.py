"""What a sweep planned, one line per job in ``<sweep dir>/.exca/jobs.jsonl``: its number, its
overrides, its cache entry and what the plan did with it (read from the cache, run, or wait for
another process), then a line per job it saw end. ``exca-hydra timeline --sweep DIR`` reads it back: which jobs this sweep took
from the cache, and which it ran but recorded no outcome for (interrupted)."""

from __future__ import annotations

import json
import logging
import time
import typing as tp
from pathlib import Path

if tp.TYPE_CHECKING:
    from .jobs import HydraJob

RECORD = Path(".exca") / "jobs.jsonl"
logger = logging.getLogger("exca_hydra.launcher")


def record_plan(sweep_dir: str | Path, jobs: tp.Sequence[HydraJob]) -> None:
    """Append this batch's jobs (a sweeper may launch several batches into one sweep dir)."""
    now = time.time()
    lines = []
    for job in jobs:
        step = job.step
        lines.append(json.dumps({
            "num": job.num, "overrides": job.shown_overrides, "at": now,
            "entry": str(job.entry.folder.absolute()) if job.entry is not None else None,
            "action": step.action if step is not None else None,
        }) + "\n")  # fmt: skip
    path = Path(sweep_dir) / RECORD
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:  # one write: lines of batches launched at once stay whole
            f.write("".join(lines))
    except OSError as e:  # a record for looking later: never a reason to stop the sweep
        logger.warning("Could not record the sweep's plan in %s: %s", path, e)


def record_end(sweep_dir: str | Path, num: int, status: str = "") -> None:
    """A job this sweep saw end (its outcome is in its entry); one without such a line was
    interrupted, whatever a later sweep computed for its entry since."""
    path = Path(sweep_dir) / RECORD
    try:
        with path.open("a") as f:
            f.write(json.dumps({"num": num, "ended": time.time(), "status": status}) + "\n")
    except OSError:
        pass


def read_plan(sweep_dir: str | Path) -> list[dict[str, tp.Any]]:
    """The jobs a sweep planned (the last plan of each job number), with ``ended`` when it saw one end."""
    path = Path(sweep_dir) / RECORD
    if not path.is_file():
        raise FileNotFoundError(
            f"{sweep_dir} holds no record of an exca launcher's sweep ({RECORD}): a sweep of another "
            "launcher, or of a version before it was recorded. Leave out --sweep to see every entry's last job."
        )
    jobs: dict[int, dict[str, tp.Any]] = {}
    with path.open() as f:
        for line in f:
            try:
                job = json.loads(line)
            except ValueError:  # a line cut by a kill: the others stand
                continue
            if not isinstance(job, dict) or not isinstance(job.get("num"), int):
                continue
            if "ended" in job:
                seen = jobs.setdefault(job["num"], {"num": job["num"]})
                seen["ended"], seen["status"] = job["ended"], job.get("status", "")
            elif job.get("action") in ("skip", "read") and jobs.get(job["num"], {}).get("action") == "run":
                continue  # a re-run into the same folder collected what this sweep ran: the run stays
            else:
                jobs[job["num"]] = job
    return [jobs[num] for num in sorted(jobs)]
