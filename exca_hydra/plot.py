"""``exca-hydra plot``: a result against one swept field, one line per group, from the results
table (``outcome.json`` previews: nothing is unpickled). Failed and missing jobs are marked at
the bottom of the axes, at their x, not dropped."""

from __future__ import annotations

import json
import math
import typing as tp
from pathlib import Path

from .figure import finish, pyplot, short_path
from .table import order_key, rows

State = tp.Literal["completed", "failed", "missing"]
MARKERS: dict[str, str] = {"failed": "x", "missing": "^"}  # missing: not computed, or no number there
LEGEND_MAX = 12


class Point(tp.NamedTuple):
    x: tp.Any
    y: float | None
    state: State
    uid: str


class Series(tp.NamedTuple):
    """What one figure shows: points per group, and whether x is categorical or log-scaled."""

    groups: dict[str, list[Point]]
    categories: list[str] | None  # x values as text, in order, when they are not all numbers
    log_x: bool
    method: str
    no_x: int = 0  # entries without a value at x (written before that field existed): not drawn


def _number(value: tp.Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(folder: Path | str, x: str, y: str, by: tp.Sequence[str] = (), method: str | None = None) -> Series:
    table = rows(folder, method=method)
    if not table:
        raise ValueError(f"No cache entries under {folder}" + (f" for method {method!r}" if method else ""))
    methods = sorted({row["method"] for row in table})
    if len(methods) > 1:
        raise ValueError(f"{folder} holds several methods, plot one of them (--method): {', '.join(methods)}")
    columns = list(table[0])
    for name in (x, *by):
        if name not in columns:
            raise ValueError(f"no column {name!r}; the columns: {', '.join(columns)}")
    if y not in columns:
        results = [c for c in columns if c == "result" or c.startswith("result.")]
        raise ValueError(f"no column {y!r}; the result columns: {', '.join(results) or 'none (no completed job)'}")
    groups: dict[tuple[tp.Any, ...], list[Point]] = {}
    no_x = 0
    for row in table:
        if row[x] is None:  # (an axis of numbers and one None would turn into labels)
            no_x += 1
            continue
        value = row[y]
        if row["status"] == "completed" and _number(value):
            state: State = "completed"
        elif row["status"] == "completed":  # no number there (None, a string, another shape): marked
            state, value = "missing", None
        else:
            state, value = ("failed" if row["status"] == "failed" else "missing"), None
        key = tuple(_hashable(row[name]) for name in by)  # the legend's title names the columns
        groups.setdefault(key, []).append(Point(row[x], value, state, row["uid"]))
    if not groups:
        raise ValueError(f"no entry has a value at {x}")
    if not any(p.state == "completed" for points in groups.values() for p in points):
        shown = sorted({repr(row[y]) for row in table if row["status"] == "completed"})[:3]
        raise ValueError(f"no completed job has a number in {y}" + (f" (they hold {', '.join(shown)}; a dict result's "
                         f"keys are columns of their own: result.<key>)" if shown else ""))  # fmt: skip
    xs = [point.x for points in groups.values() for point in points]
    categories = None
    if not all(_number(v) for v in xs):
        categories = sorted({_text(v) for v in xs}, key=lambda v: (not _is_float(v), _float(v), v))
    log_x = categories is None and min(xs) > 0 and max(xs) / min(xs) > 100  # more than two decades
    order = sorted(groups, key=lambda key: [order_key(v) for v in key])
    return Series({", ".join(map(str, key)): groups[key] for key in order}, categories, log_x, methods[0], no_x)


def _hashable(value: tp.Any) -> tp.Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def _text(value: tp.Any) -> str:
    return str(_hashable(value))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float(text: str) -> float:
    return float(text) if _is_float(text) else 0.0


def draw(data: Series, x: str, y: str, by: tp.Sequence[str] = (), title: str = "", show: bool = False) -> tp.Any:
    """The figure (matplotlib's): one line per group through its completed points, in x order."""
    plt = pyplot(show)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    position = {c: i for i, c in enumerate(data.categories or [])}

    def where(value: tp.Any) -> float:
        return position[_text(value)] if data.categories is not None else float(value)

    bottom = ax.get_xaxis_transform()  # x in data, y in axes fractions: the marks sit under the points
    marked = set()
    for index, (label, points) in enumerate(data.groups.items()):
        colour = f"C{index % 10}"
        done = sorted((where(p.x), p.y) for p in points if p.state == "completed")
        ax.plot([p[0] for p in done], [p[1] for p in done], marker="o", color=colour, label=label or y)
        for state, marker in MARKERS.items():
            xs = [where(p.x) for p in points if p.state == state]
            if xs:
                marked.add(state)
                ax.scatter(xs, [0.03] * len(xs), marker=marker, color=colour, transform=bottom,
                           facecolors="none" if state == "missing" else colour, clip_on=False, zorder=3)  # fmt: skip
    if data.categories is not None:
        ax.set_xticks(range(len(data.categories)), data.categories, rotation=30 if len(data.categories) > 6 else 0)
    elif data.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"{y} vs {x} ({data.method})")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > LEGEND_MAX:  # a legend of 100 lines hides the plot: the first ones, and a count
        more = len(handles) - LEGEND_MAX + 1
        handles, labels = handles[: LEGEND_MAX - 1], labels[: LEGEND_MAX - 1]
        handles.append(plt.Line2D([], [], linestyle="none"))
        labels.append(f"... {more} more (colours repeat)")
    for state in sorted(marked):  # what the marks at the bottom mean
        handles.append(ax.scatter([], [], marker=MARKERS[state], color="black", facecolors="none" if state == "missing" else "black"))
        labels.append(state)
    if len(data.groups) > 1 or marked:
        outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if len(handles) > 6 else {}
        ax.legend(handles, labels, title=", ".join(by) or None, fontsize="small", **outside)
    fig.tight_layout()
    return fig


def describe(data: Series) -> str:
    points = [p for group in data.groups.values() for p in group]
    counts = {state: sum(p.state == state for p in points) for state in ("completed", "failed", "missing")}
    text = f"{counts['completed']} point(s) in {len(data.groups)} group(s)"
    text += "".join(f", {counts[s]} {s} (marked at the bottom)" for s in ("failed", "missing") if counts[s])
    return text + (f", {data.no_x} without a value at x (not drawn)" if data.no_x else "")


def plot(
    folder: Path | str, x: str, y: str = "result", by: tp.Sequence[str] = (), method: str | None = None,
    output: str | Path | None = None, show: bool = False,
) -> tp.Any:  # fmt: skip
    """Draw ``y`` against ``x`` for the entries of a cache folder; write it to ``output`` (PNG, SVG
    or PDF from its name) and/or show it. Returns the figure's description."""
    data = series(folder, x, y, by, method)
    fig = draw(data, x, y, by, f"{y} vs {x}: {data.method}\n{short_path(folder, 2)}", show)
    finish(fig, output, show)
    return describe(data)
