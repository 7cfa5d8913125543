"""``exca-hydra timeline``: one bar per job, queued (submitted to started) then running (started
to ended), coloured by outcome, one row per Slurm task or pull worker (local jobs: one row per
slot they ran in side by side). A row's grey is a job waiting while that row was free: Slurm's
queue for an array task or a worker's first job, the gaps between a worker's jobs after. Read from ``outcome.json`` and ``job.json``: nothing unpickled.

With ``--sweep DIR`` the jobs are that sweep's (``.exca/jobs.jsonl``): the ones it took from
the cache are shown as cached, the ones it ran without an outcome as interrupted."""

from __future__ import annotations

import datetime
import statistics
import typing as tp
from pathlib import Path

from .cache.store import Entry
from .figure import finish, pyplot, short_path
from .table import iter_entries, matches_method

Outcome = tp.Literal["completed", "failed", "cached", "interrupted"]
COLOURS: dict[str, str] = {"completed": "tab:green", "failed": "tab:red", "cached": "tab:blue",
                           "interrupted": "tab:orange", "queued": "lightgray"}  # fmt: skip


class Bar(tp.NamedTuple):
    label: str  # the job: "#3 model=vit lr=0.1", or its uid
    worker: str  # a Slurm task (<array>_<task>), a pull worker's task, or host:pid
    submitted: float
    started: float
    ended: float
    outcome: Outcome


def _times(done: dict[str, tp.Any]) -> tuple[float, float, float] | None:
    ended, duration = done.get("finished_at"), done.get("duration")
    if not isinstance(ended, (int, float)) or not isinstance(duration, (int, float)):
        return None
    started = done.get("started_at", ended - duration)
    submitted = done.get("submitted_at", started)
    return float(submitted), float(started), float(ended)


def _worker(done: dict[str, tp.Any]) -> str:
    if done.get("job_id"):
        return str(done["job_id"])
    return f"{done.get('host') or '?'}:{done.get('pid') or '?'}"


def _bar(entry: Entry, label: str, since: float = 0.0) -> Bar | None:
    """The entry's last outcome as a bar (None: none recorded, or one older than ``since``)."""
    done = entry.read_outcome()
    times = _times(done) if done else None
    if done is None or times is None or times[2] < since or done.get("status") not in ("completed", "failed"):
        return None
    return Bar(label, _worker(done), *times, done["status"])


def bars(folder: Path | str, sweep: Path | str | None = None, method: str | None = None) -> tuple[list[Bar], int]:
    """The bars, and how many jobs have none (no outcome yet: running, or never run)."""
    if sweep is None:
        found = [(_bar(entry, entry.uid), entry) for entry in iter_entries(folder)
                 if method is None or matches_method(entry, method)]  # fmt: skip
        return [bar for bar, _ in found if bar is not None], sum(bar is None for bar, _ in found)
    from .bridge.launch.sweep_record import read_plan

    plan = read_plan(sweep)
    out: list[Bar] = []
    last = 0.0
    for job in plan:
        label = f"#{job['num']} {job.get('overrides') or ''}".strip()
        at = float(job.get("at") or 0.0)
        entry = Entry(job["entry"]) if job.get("entry") else None
        if job.get("action") in ("read", "skip") or entry is None:  # its recorded outcome was the answer
            out.append(Bar(label, "cache", at, at, at, "cached"))
            continue
        bar = _bar(entry, label, since=at) if "ended" in job or job.get("action") != "run" else None
        ended = job.get("ended")
        if job.get("status") == "submitted":  # wait=false: the sweep submitted it and did not wait
            ended = None
        if bar is not None and isinstance(ended, (int, float)) and bar.ended > ended + 0.5:  # written after the sweep saw it end
            # a later run's outcome (retry, force, recomputed): this sweep's own times are gone,
            # its recorded end and status stand
            status: Outcome = "failed" if job.get("status") == "failed" else "completed" if job.get("status") == "completed" else "interrupted"
            bar = Bar(label, "outcome replaced since", at, at, float(ended), status)
        if bar is not None and bar.submitted == bar.started:  # local: queued from the launch on
            bar = bar._replace(submitted=min(at, bar.started))
        if bar is not None:
            out.append(bar)
            last = max(last, bar.ended)
        else:  # planned to run, no outcome since: stopped (Ctrl-C, kill), or still running
            ref = entry.read_job() or {}
            submitted = ref.get("submitted_at", at)
            out.append(Bar(label, str(ref.get("job_id") or "not started"), float(submitted), float(submitted), float("nan"), "interrupted"))
    end = last or max((b.submitted for b in out), default=0.0)
    return [b._replace(ended=end) if b.outcome == "interrupted" else b for b in out], 0


def rows_of(found: tp.Sequence[Bar]) -> list[tuple[str, list[Bar]]]:
    """The figure's rows: one per worker; local jobs (host:pid, one process each) packed into
    slots of the jobs that ran side by side, so the rows show how many ran at once."""
    workers: dict[str, list[Bar]] = {}
    slots: dict[str, list[list[Bar]]] = {}
    for bar in sorted(found, key=lambda b: (b.started, b.ended)):
        host, _, pid = bar.worker.rpartition(":")
        if host and (pid.isdigit() or pid == "?"):
            lanes = slots.setdefault(host, [])
            lane = next((lane for lane in lanes if lane[-1].ended <= bar.started), None)
            if lane is None:
                lanes.append(lane := [])
            lane.append(bar)
        else:
            workers.setdefault(bar.worker, []).append(bar)
    out = [(name, workers[name]) for name in sorted(workers, key=_task_order)]
    for host in sorted(slots):
        out += [(f"{host} slot {i + 1}", lane) for i, lane in enumerate(slots[host])]
    return out


def _task_order(name: str) -> tuple[tp.Any, ...]:
    parts = name.replace("_", " ").split()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _unit(span: float) -> tuple[float, str]:
    return (3600.0, "h") if span > 3 * 3600 else (60.0, "min") if span > 600 else (1.0, "s")


def draw(found: tp.Sequence[Bar], title: str, show: bool = False) -> tp.Any:
    plt = pyplot(show)
    lanes = rows_of(found)
    t0 = min(b.submitted for b in found)
    scale, unit = _unit(max(b.ended for b in found) - t0)
    span = (max(b.ended for b in found) - t0) / scale
    fig, ax = plt.subplots(figsize=(9, max(3.0, min(12.0, 1.2 + 0.25 * len(lanes)))))
    queued: list[tuple[int, float, float]] = []
    running: dict[str, list[tuple[int, float, float]]] = {}
    for y, (_, lane) in enumerate(lanes):
        free = -float("inf")  # a row shows one job at a time: a job waits from when the row is free
        for bar in sorted(lane, key=lambda b: b.started):
            waited = max(bar.submitted, free)
            if bar.started > waited:
                queued.append((y, (waited - t0) / scale, (bar.started - waited) / scale))
            free = max(free, bar.ended)
            running.setdefault(bar.outcome, []).append((y, (bar.started - t0) / scale, (bar.ended - bar.started) / scale))
    from matplotlib.collections import PolyCollection

    def bars_of(spans: list[tuple[int, float, float]], least: float = 0.0) -> list[list[tuple[float, float]]]:
        """One rectangle per span (row, left, width): one collection per colour draws 1,000 fast."""
        out = []
        for y, left, width in spans:
            right = left + max(width, least)
            out.append([(left, y - 0.4), (right, y - 0.4), (right, y + 0.4), (left, y + 0.4)])
        return out

    layers = [("queued", queued, 0.0)] + [(o, running.get(o, []), span / 150 if o == "cached" else 0.0)
                                          for o in ("completed", "failed", "cached", "interrupted")]  # fmt: skip
    for outcome, spans, least in layers:  # cached: read at once, drawn as a tick to be seen
        if spans:
            ax.add_collection(PolyCollection(
                bars_of(spans, least), facecolors=COLOURS[outcome], label=outcome, linewidths=0.5,
                edgecolors="black" if outcome == "cached" else COLOURS[outcome],
                hatch="//" if outcome == "interrupted" else None,
            ))  # fmt: skip
    ax.set_xlim(0, span * 1.02 or 1.0)
    names = [f"from the cache ({len(lane)})" if name == "cache" else name for name, lane in lanes]
    step = max(1, len(names) // 40)  # readable labels: at most ~40 of them
    ax.set_yticks(range(0, len(names), step), names[::step], fontsize="small")
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first worker on top
    start = datetime.datetime.fromtimestamp(t0).isoformat(sep=" ", timespec="seconds")
    ax.set_xlabel(f"time since the first submission ({unit}; {start})")
    ax.set_ylabel("Slurm task / worker")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def describe(found: tp.Sequence[Bar], without: int = 0) -> str:
    """Where the time went, in a few lines: queue time, run time, the slowest job, idle workers."""
    ran = [b for b in found if b.outcome in ("completed", "failed")]
    counts = {o: sum(b.outcome == o for b in found) for o in ("completed", "failed", "cached", "interrupted")}
    lines = [f"{len(found)} job(s): " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)
             + (f"; {without} without an outcome yet (not drawn)" if without else "")]  # fmt: skip
    if ran:
        queue = [b.started - b.submitted for b in ran]
        run = [b.ended - b.started for b in ran]
        lanes = [lane for lane in rows_of(ran)]
        span = max(b.ended for b in ran) - min(b.started for b in ran)
        busy = sum(run)
        slowest = max(ran, key=lambda b: b.ended - b.started)
        median = statistics.median(run)
        lines.append(f"queued: median {statistics.median(queue):.1f} s, max {max(queue):.1f} s; "
                     f"running: median {median:.1f} s, max {max(run):.1f} s")  # fmt: skip
        ratio = f" ({(slowest.ended - slowest.started) / median:.1f}x the median)" if median > 0 else ""
        lines.append(f"slowest: {slowest.label} on {slowest.worker}, {slowest.ended - slowest.started:.1f} s{ratio}")
        if span > 0:
            lines.append(f"{len(lanes)} worker row(s) busy {100 * busy / (len(lanes) * span):.0f}% of the {span:.1f} s from the first start to the last end")
    return "\n".join(lines)


def timeline(
    folder: Path | str, sweep: Path | str | None = None, method: str | None = None,
    output: str | Path | None = None, show: bool = False,
) -> str:  # fmt: skip
    """Draw the jobs' timeline; write it to ``output`` and/or show it. Returns what it shows."""
    found, without = bars(folder, sweep, method)
    if not found:
        raise ValueError(f"No job with a recorded outcome under {folder}" + (f" in sweep {sweep}" if sweep else ""))
    what = f"sweep {short_path(sweep, 2)}" if sweep else (method or "all methods")
    fig = draw(found, f"Jobs of {what}\n{short_path(folder, 2)}", show)
    finish(fig, output, show)
    return describe(found, without)
