"""What a cache folder holds, read without unpickling anything and without writing anything: its
entries, their status, and a table of results (``exca-hydra table``, ``exca_hydra.results``).

A row is one entry: its method folder, uid, status, duration, every config value, defaults
included (``config.yaml``, flattened: ``model.layers``; the infra's resources left out), the
preview of its result (``outcome.json``: ``result`` for a scalar, ``result.<key>`` for a dict's
leaves; ``error`` for a failure), and when and where it ran (``finished``, ``host``, ``job_id``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import typing as tp
from pathlib import Path

import yaml

from .cache import records
from .cache.store import CONFIG, UID_CONFIG, Entry, Status

FIXED = ("method", "uid", "status", "duration")
WHERE = ("finished", "host", "job_id")  # last: when and where the result was written
FORMATS = ("markdown", "csv", "json")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_entry(folder: Path) -> bool:
    return (folder / UID_CONFIG).exists()


def iter_entries(root: Path | str) -> tp.Iterator[Entry]:
    """Entries under a cache root, a method folder, or one uid folder."""
    root = Path(root)
    if is_entry(root):
        yield Entry(root)
        return
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for method_dir in candidates:
        for folder in sorted(method_dir.iterdir()) if method_dir.is_dir() else []:
            if folder.is_dir() and is_entry(folder):
                yield Entry(folder)


def read_status(entry: Entry, ask_backend: bool = False) -> str:
    """The status from the files; ``ask_backend``: ask Slurm or the OS about a submitted job.
    Never writes (a job that ended without an outcome is "failed" here; the library's own
    status() also records why, in the entry)."""
    status = entry.file_status()
    if status is not None:
        return status
    if not ask_backend:
        if entry.read_job() is not None:
            return "submitted"
        # no job reference (an exca_local job, an inline run): a live claim says it is being computed
        return "running" if entry.claim_owner() is not None and not entry.claim_is_stale() else "not submitted"
    from .execution.plan import read_status as plan_status

    return plan_status(entry)[0]


def read_yaml(entry: Entry, name: str) -> dict[str, tp.Any]:
    try:
        data = records.read_yaml(entry.folder / name)  # bounded: anyone may have written it
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def outcome(entry: Entry, status: str) -> dict[str, tp.Any] | None:
    """``outcome.json`` when it describes the entry's current status (None: no preview)."""
    data = entry.read_outcome()
    return data if data is not None and data.get("status") == status else None


def preview_columns(shown: tp.Any) -> dict[str, tp.Any]:
    if isinstance(shown, dict):
        return {f"result.{key}": value for key, value in shown.items()}
    return {"result": shown}


def matches_method(entry: Entry, method: str) -> bool:
    """``method`` names the method folder ``models.MyTask.compute,0`` whole, without its version,
    or by its last dotted parts (``MyTask.compute``, ``compute``)."""
    name = entry.folder.parent.name
    bare = name.rpartition(",")[0] or name
    return method in (name, bare) or bare.endswith("." + method)


def rows(
    folder: Path | str, status: str | None = None, method: str | None = None, sort: str | None = None
) -> list[dict[str, tp.Any]]:
    """One dict per entry, every dict with the same keys: FIXED, then the config columns, then the
    result columns (None where an entry has no such value). ``sort``: a column, ``-column`` for
    descending; entries without a value come last."""
    from .cache.uid import flatten

    from .cache.trust import trusted_owner, user_name

    out: list[dict[str, tp.Any]] = []
    config_keys: dict[str, None] = {}  # ordered sets
    result_keys: dict[str, None] = {}
    foreign: dict[str, int] = {}
    for entry in iter_entries(folder):
        if method is not None and not matches_method(entry, method):
            continue
        current = read_status(entry)
        if status is not None and current != status:
            continue
        try:
            owner = entry.path("outcome.json").stat().st_uid
        except OSError:
            owner = None
        if owner is not None and not trusted_owner(owner):  # shown, but said: run() would refuse it
            foreign[user_name(owner)] = foreign.get(user_name(owner), 0) + 1
        row: dict[str, tp.Any] = {"method": entry.folder.parent.name, "uid": entry.uid, "status": current}
        done = outcome(entry, current)
        row["duration"] = done.get("duration") if done else None
        values = flatten(without_infras(read_yaml(entry, CONFIG))) or flatten(read_yaml(entry, UID_CONFIG))
        config = {(f"config.{k}" if k in FIXED + WHERE else k): v for k, v in values.items()}
        result = {}
        if done and "preview" in done:  # a failure's preview is its error message
            result = preview_columns(done["preview"]) if current == "completed" else {"error": done["preview"]}
        config_keys.update(dict.fromkeys(config))
        result_keys.update(dict.fromkeys(k for k in result if k not in config))
        where = {"finished": _date(done.get("finished_at")) if done else None,
                 "host": done.get("host") if done else None, "job_id": done.get("job_id") if done else None}
        out.append({**row, **config, **{k: v for k, v in result.items() if k not in config}, **where})
    if foreign:
        logging.getLogger(__name__).warning(
            "%d entr%s written by someone you do not trust (%s): their values are theirs to say, and run() or a "
            "sweep would refuse them", sum(foreign.values()), "y" if sum(foreign.values()) == 1 else "ies",
            ", ".join(f"{n}: {c}" for n, c in sorted(foreign.items())))  # fmt: skip
    columns = [*FIXED, *config_keys, *result_keys, *WHERE]
    table = [{column: row.get(column) for column in columns} for row in out]
    if sort:
        column = sort.lstrip("-")
        if column not in columns:
            raise ValueError(f"no column {column!r} to sort by; the columns: {', '.join(columns)}")
        present = [row for row in table if row[column] is not None]
        present.sort(key=lambda row: order_key(row[column]), reverse=sort.startswith("-"))
        table = present + [row for row in table if row[column] is None]
    return table


def without_infras(config: dict[str, tp.Any]) -> dict[str, tp.Any]:
    """The config without its infras' sub-configs (resources and cache settings, not parameters)."""
    return {key: without_infras(value) if isinstance(value, dict) else value
            for key, value in config.items() if not (isinstance(value, dict) and _INFRA_KEYS <= value.keys())}


_INFRA_KEYS = frozenset(("folder", "cluster", "mode", "version"))


def _date(stamp: tp.Any) -> str | None:
    import datetime

    if not isinstance(stamp, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds")


def human_duration(seconds: tp.Any) -> str:
    """0.012 s, 4.2 s, 3 min 05 s, 2 h 10 min (the table printed for people)."""
    if not isinstance(seconds, (int, float)) or seconds != seconds:
        return ""
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def best_rows(
    table: list[dict[str, tp.Any]], column: str, by: tp.Sequence[str] = (), maximize: bool = True
) -> list[dict[str, tp.Any]]:
    """One row per group of ``by`` values (one row without ``by``): the one whose ``column``
    (e.g. ``result`` or ``result.accuracy``) is highest (``maximize``) or lowest. Rows without a
    number there (failed, still running, a non-numeric preview) never win; a group with none has
    no row."""
    columns = list(table[0]) if table else []
    for name in (column, *by):
        if table and name not in columns:
            raise ValueError(f"no column {name!r}; the columns: {', '.join(columns)}")
    winners: dict[tuple[tp.Any, ...], dict[str, tp.Any]] = {}
    for row in table:
        value = row.get(column)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            continue
        key = tuple(json.dumps(row.get(name), sort_keys=True, default=str) for name in by)
        held = winners.get(key)
        if held is None or (value > held[column] if maximize else value < held[column]):
            winners[key] = row
    return [winners[key] for key in sorted(winners)]


def order_key(value: tp.Any) -> tuple[int, tp.Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def results(
    folder: Path | str,
    status: str | None = None,
    method: str | None = None,
    sort: str | None = None,
    as_frame: bool = False,
    best: str | None = None,
    by: str | tp.Sequence[str] = (),
    maximize: bool | None = None,
) -> tp.Any:
    """The results table of a cache folder (a cache root, a method folder or one entry), read
    without unpickling: a list of dict rows (see ``rows``), or a pandas DataFrame with
    ``as_frame=True`` (pandas is not a dependency: install it for this). ``best="result"`` (or
    ``"result.accuracy"``): only the best row of each group of ``by`` (``"model.name"``, or a list
    of columns), the highest with ``maximize=True``, the lowest with ``maximize=False`` (one of them
    is required). A folder that does not exist, or a status that is none, is an error."""
    if not Path(folder).exists():
        raise FileNotFoundError(f"No cache folder {folder}")
    if status is not None and status not in tp.get_args(Status):
        raise ValueError(f"status={status!r} is none of {', '.join(tp.get_args(Status))}")
    if best is not None and maximize is None:  # (which is better is not guessed, as the CLI's --max/--min)
        raise ValueError(f"results(best={best!r}) needs maximize=True (the highest) or maximize=False (the lowest)")
    table = rows(folder, status=status, method=method, sort=sort)
    if best is not None:
        table = best_rows(table, best, [by] if isinstance(by, str) else list(by), bool(maximize))
    if not as_frame:
        return table
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError("results(..., as_frame=True) needs pandas (pip install pandas), or use the rows") from e
    return pd.DataFrame(table, columns=list(table[0]) if table else list(FIXED))


def _cell(value: tp.Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _finite(value: tp.Any) -> tp.Any:
    """Valid JSON: NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (as JavaScript
    prints them; null would be a result of None, and +inf would be -inf)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return json.dumps(value)
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def format_table(table: list[dict[str, tp.Any]], fmt: str = "markdown") -> str:
    if fmt == "json":
        return json.dumps(_finite(table), indent=1, default=str, allow_nan=False)
    columns = list(table[0]) if table else list(FIXED)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(row[c]) for c in columns] for row in table])
        return buffer.getvalue().rstrip("\n")
    if fmt != "markdown":
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    lines = [columns, ["---"] * len(columns)]
    shown = [{**row, "duration": human_duration(row.get("duration"))} for row in table]
    lines += [[_cell(row[c]).replace("|", "\\|").replace("\n", " ") for c in columns] for row in shown]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def describe_preview(shown: tp.Any) -> str:
    """One line for ``exca-hydra show``."""
    if isinstance(shown, dict):
        return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in shown.items())
    return shown if isinstance(shown, str) else json.dumps(shown)
