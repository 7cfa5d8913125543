"""``exca-hydra``: look into a cache folder: list entries, show one, a results table, plot the
results or the jobs' timeline, explain a miss, clear entries. Looking writes nothing and unpickles nothing."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import typing as tp
from pathlib import Path

import yaml

from .terminal import SafeWriter
from .table import FORMATS, describe_preview, format_table, is_entry, iter_entries, outcome, read_status
from .table import best_rows, read_yaml, rows
from .cache.itemstore import summarize
from .cache.records import same_stored
from .cache.store import CONFIG, UID_CONFIG, Entry
from .cache.uid import flatten


STATUSES = ["completed", "failed", "running", "submitted", "not submitted"]


def _uid_cfg(entry: Entry) -> dict[str, tp.Any]:
    return read_yaml(entry, UID_CONFIG)


def cmd_list(args: argparse.Namespace) -> int:
    lines = []
    for entry in iter_entries(Path(args.folder)):
        status = read_status(entry, args.check)  # writes nothing, unpickles nothing
        if args.status and status != args.status:
            continue
        values = ", ".join(f"{k}={v}" for k, v in flatten(_uid_cfg(entry)).items()) or "(defaults)"
        items = summarize(entry.folder)  # a MapInfra folder: its items, not one result
        if items is not None:
            status, values = "items", f"{values} ({items})"
        lines.append((entry.folder.parent.name, status, entry.uid, values))
    for method, status, uid, values in lines:
        print(f"{status:<13} {method}/{uid}\n              {values}")
    print(f"{len(lines)} entr{'y' if len(lines) == 1 else 'ies'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    entry = Entry(Path(args.entry))
    if not is_entry(entry.folder):
        print(f"{entry.folder} is not a cache entry (no {UID_CONFIG})", file=sys.stderr)
        return 1
    status = read_status(entry, args.check)
    items = summarize(entry.folder)
    if items is not None:  # a MapInfra folder
        print(f"entry:   {entry.folder}\nitems:   {items}")
        print("--- uid config ---\n" + yaml.safe_dump(_uid_cfg(entry), sort_keys=False), end="")
        return 0
    print(f"entry:   {entry.folder}\nstatus:  {status}")
    for name in (CONFIG, UID_CONFIG, "result.pkl", "error.txt"):
        path = entry.path(name)
        print(f"{name + ':':<12} {path if path.exists() else '-'}")
    job = entry.read_job()
    if job:
        from .execution.jobref import parse

        print(f"job:     {job.get('backend')} {job.get('job_id')} ({parse(job).describe()})")
        if job.get("log"):  # a pull worker's job: its own log, then the worker's
            print(f"log:     {job['log']}")
        if job.get("stderr"):
            print(f"{'worker:' if job.get('log') else 'log:':<8} {job['stderr']}")
    done = outcome(entry, status)  # outcome.json: nothing is unpickled
    if done and done.get("duration") is not None:
        print(f"duration: {done['duration']:.2f} s")
    if status == "completed":
        print("preview: " + (describe_preview(done.get("preview")) if done else "no preview (an older entry)"))
    error = entry.error_text().strip().splitlines()
    if not error and done and status == "failed":  # e.g. a killed job: no traceback
        error = [str(done.get("preview"))]
    if error:
        print("error:   " + error[-1])
    print("--- uid config ---\n" + yaml.safe_dump(_uid_cfg(entry), sort_keys=False), end="")
    return 0


def _config(entry: Entry) -> dict[str, tp.Any]:
    return read_yaml(entry, CONFIG)


def _at(cfg: tp.Any, path: str) -> tp.Any:
    for part in path.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _tag_keys(entries: tp.Sequence[Entry], paths: tp.Iterable[str]) -> dict[str, list[str]]:
    """Per path, the keys under it that hold a discriminator tag in some entry: uid configs
    always keep tags, so the string values they record under a sub-config are tag candidates."""
    out: dict[str, list[str]] = {}
    for path in paths:
        keys: dict[str, None] = {}
        for entry in entries:
            node = _at(_uid_cfg(entry), path)
            if isinstance(node, dict):
                keys.update((key, None) for key, value in node.items() if isinstance(value, str))
        out[path] = list(keys)
    return out


def _tag(node: tp.Any, candidates: tp.Sequence[str], wanted: tp.Any) -> tp.Any:
    """The tag of a sub-config (a group selection ``model=mlp`` names it)."""
    if not isinstance(node, dict):
        return "<absent>"
    for key in [*candidates, "name", "kind", "type"]:
        if isinstance(node.get(key), str):
            return node[key]
    strings = [value for value in node.values() if isinstance(value, str)]
    return wanted if wanted in strings else (strings[0] if strings else "<absent>")


def nearest(
    root: Path, wanted: dict[str, tp.Any], optional: tp.AbstractSet[str] = frozenset()
) -> list[tuple[int, Entry, dict[str, tuple[tp.Any, tp.Any]]]]:
    """Cached entries ordered by how many fields differ from ``wanted`` (dotted keys). A wanted
    key is compared with the entry's full config (so a value equal to the default matches); a
    non-default field of the entry that ``wanted`` does not name differs from the default (a key
    in ``optional`` is not compared where the entry records it outside its uid: a model's infra).  A
    key naming a sub-config (a config group: ``model=mlp``) is compared with its tag."""
    out = []
    entries = list(iter_entries(root))
    tag_keys = _tag_keys(entries, [key for key, value in wanted.items() if isinstance(value, str)])
    for entry in entries:
        config = _config(entry)
        full, differing = flatten(config), flatten(_uid_cfg(entry))
        diff = {}
        for key, value in wanted.items():
            if key in optional and key in full and key not in differing:
                continue  # an infra resource the entry's uid leaves out (a model's)
            if key in full or key in differing or not isinstance(_at(config, key), dict):
                diff[key] = (value, full.get(key, differing.get(key, "<absent>")))
            else:  # a group selection: the tag of the sub-config there
                diff[key] = (value, _tag(_at(config, key), tag_keys.get(key, ()), value))
        for key, value in differing.items():
            parent = key.rpartition(".")[0]
            if key in wanted or (parent in wanted and parent not in full and value == diff[parent][1]):
                continue  # named, or the tag a group selection was compared with
            diff[key] = ("<default>", value)
        # the same value of the same kind, as the uid has it (1.0 is not 1, nor -0.0 0.0, nor true 1):
        # in doubt (lr=1 typed for a float field, without --app) a miss, never a wrong "Cached"
        diff = {key: pair for key, pair in sorted(diff.items()) if not same_stored(pair[1], pair[0], numbers=False)}
        out.append((len(diff), entry, diff))
    return sorted(out, key=lambda item: item[0])


def parse_values(items: tp.Sequence[str]) -> dict[str, tp.Any]:
    """``key=value`` items as the app takes them (Hydra's override syntax): ``model=mlp`` and
    ``model/opt=sgd`` select an option (compared with the tag at ``model``, ``model.opt``),
    ``+``/``++`` prefixes are accepted, ``~key`` and ``hydra`` overrides are ignored."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    wanted: dict[str, tp.Any] = {}
    for item in items:
        if "=" not in item and not item.startswith("~"):
            raise ValueError(f"expected key=value, got {item!r}")
        try:
            (override,) = parser.parse_overrides([item])
        except Exception as e:  # noqa: BLE001 - Hydra's parse error
            raise ValueError(f"cannot parse {item!r}: {e}") from None
        key = override.key_or_group
        if override.is_delete() or override.is_hydra_override() or key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.is_sweep_override():
            raise ValueError(f"{item!r}: explain takes one value per key")
        wanted[key.replace("/", ".")] = override.value()
    return wanted


def cmd_explain(args: argparse.Namespace) -> int:
    optional: set[str] = set()
    try:
        wanted = parse_values(args.values)
        if args.app:  # what the app composes: its YAML and generated defaults too
            from .bridge.start.app_values import composed_values

            wanted, optional = composed_values(args.app, args.values)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    ranked = nearest(Path(args.folder), wanted, optional)
    if not ranked:
        print("No cached entries there.")
        return 1
    count, entry, diff = ranked[0]
    if count == 0:
        print(f"Cached: {entry.folder} ({read_status(entry)})")
        return 0
    print(f"Miss. Nearest cached entry: {entry.folder}")
    for key, (want, have) in diff.items():
        print(f"  {key}: wanted {json.dumps(want)}, cached {json.dumps(have)}")
    if not args.app:  # the values an app's YAML sets look like changed defaults
        print("(only the values named are compared with the defaults: `explain --app app.py FOLDER ...` compares what the app composes, its YAML included)")
    return 1


def _own_folder(root: Path, folder: Path) -> Path | None:
    """``folder``'s real path when it is inside ``root`` with no symbolic link below ``root``."""
    real = Path(os.path.realpath(folder))
    expected = Path(os.path.normpath(Path(os.path.realpath(root)) / folder.relative_to(root)))
    return real if real == expected else None


def _named(entries: tp.Sequence[Entry], wanted: tp.Sequence[str]) -> tuple[list[Entry], str | None]:
    """The entries ``--uid`` names: ``method/uid`` as ``list`` prints it, or a bare uid when one
    method has it (a default config's uid is the same for every method: naming it alone must not
    clear another method's entry); else the error to print."""
    chosen: list[Entry] = []
    for name in wanted:
        method, _, uid = name.rpartition("/")
        found = [e for e in entries if e.uid == uid and (not method or e.folder.parent.name == method)]
        if not found:
            return [], f"no entry {name!r} here: give the uid, or method/uid as `exca-hydra list` prints it"
        if len(found) > 1:
            shown = ", ".join(f"{e.folder.parent.name}/{e.uid}" for e in found)
            return [], f"{name!r} is the uid of entries of {len(found)} methods ({shown}): name one as method/uid"
        chosen += found
    return chosen, None


def cmd_clear(args: argparse.Namespace) -> int:
    root, chosen, skipped, failed = Path(args.folder), [], 0, 0
    entries = list(iter_entries(root))
    if args.uid:
        entries, error = _named(entries, args.uid)
        if error:
            print(error, file=sys.stderr)
            return 2
    for entry in entries:
        if args.failed and entry.file_status() != "failed":
            continue
        real = _own_folder(root, entry.folder)
        if real is None:  # never delete outside the folder given
            print(f"skipping {entry.folder}: a symbolic link (or inside one) to {os.path.realpath(entry.folder)}; "
                  "clear it in its own cache", file=sys.stderr)  # fmt: skip
            skipped += 1
        else:
            chosen.append((entry.folder, Entry(real)))
    for folder, entry in chosen:
        print(("would clear " if args.dry_run else "clearing ") + str(folder))
        if args.dry_run:
            continue
        try:
            if args.failed:
                entry.clear()  # the configs stay; the next run recomputes
            else:
                shutil.rmtree(entry.folder)
        except OSError as e:
            print(f"could not clear {folder}: {e}", file=sys.stderr)
            failed += 1
    count = len(chosen) - failed
    print(f"{count} entr{'y' if count == 1 else 'ies'} {'selected' if args.dry_run else 'cleared'}")
    return 1 if skipped or failed else 0


def cmd_table(args: argparse.Namespace) -> int:
    try:
        table = rows(args.folder, status=args.status, method=args.method, sort=args.sort)
        if args.best is not None:
            if args.maximize is None:
                raise ValueError(f"--best {args.best}: say whether higher is better (--max) or lower (--min)")
            by = [name for name in (args.by or "").split(",") if name]
            full = bool(table)
            table = best_rows(table, args.best, by, args.maximize)
            if full and not table:
                raise ValueError(f"no row has a number in column {args.best!r}: --best picks the highest or lowest number")
        elif args.by or args.maximize is not None:
            raise ValueError("--by, --max and --min go with --best COLUMN")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print(format_table(table, args.format))
    return 0


def _figure(args: argparse.Namespace, make: tp.Callable[[], str]) -> int:
    from .figure import MissingMatplotlib, check_output

    try:
        check_output(args.output, args.show)
        said = make()
    except MissingMatplotlib as e:
        print(e, file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(e, file=sys.stderr)
        return 2
    if args.output:
        print(f"wrote {args.output}")
    print(said)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot

    by = [name for name in (args.by or "").split(",") if name]
    return _figure(args, lambda: plot(args.folder, args.x, args.y, by, args.method, args.output, args.show))


def cmd_timeline(args: argparse.Namespace) -> int:
    from .timeline import timeline

    return _figure(args, lambda: timeline(args.folder, args.sweep, args.method, args.output, args.show))


def main(argv: tp.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exca-hydra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="entries with status and uid values")
    p.add_argument("folder")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--check", action="store_true", help="ask Slurm/the OS about submitted jobs")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("show", help="one entry: status, files, job, last error line")
    p.add_argument("entry")
    p.add_argument("--check", action="store_true")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("table", help="one row per entry: status, duration, non-default values, result preview")
    p.add_argument("folder")
    p.add_argument("--format", choices=FORMATS, default="markdown")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--method", help="a method folder's name, or its end: MyTask.compute")
    p.add_argument("--sort", help="a column; -column for descending")
    p.add_argument("--best", metavar="COLUMN", help="only the best row (of each --by group) by this column: result, result.accuracy")
    p.add_argument("--by", metavar="COLUMNS", help="comma-separated columns grouping --best: model.name")
    which = p.add_mutually_exclusive_group()  # which way is better is said once
    which.add_argument("--max", dest="maximize", action="store_const", const=True, help="with --best: higher is better")
    which.add_argument("--min", dest="maximize", action="store_const", const=False, help="with --best: lower is better")
    p.set_defaults(run=cmd_table)
    p = sub.add_parser("plot", help="a result against a swept field, one line per --by group (needs exca-hydra[plot])")
    p.add_argument("folder")
    p.add_argument("--x", required=True, help="a config column: lr, model.layers")
    p.add_argument("--y", default="result", help="a result column: result (default), result.accuracy")
    p.add_argument("--by", metavar="COLUMNS", help="comma-separated columns, one line per group: model.name")
    p.add_argument("--method", help="a method folder's name, or its end (a cache holding several)")
    p.add_argument("-o", "--output", help="the figure's file: .png, .svg or .pdf")
    p.add_argument("--show", action="store_true", help="show it in a window")
    p.set_defaults(run=cmd_plot)
    p = sub.add_parser("timeline", help="one bar per job: queued, running, outcome, per Slurm task or worker (needs exca-hydra[plot])")
    p.add_argument("folder")
    p.add_argument("--sweep", help="a sweep's folder (multirun/...): its jobs only, cached and interrupted ones included")
    p.add_argument("--method", help="a method folder's name, or its end")
    p.add_argument("-o", "--output", help="the figure's file: .png, .svg or .pdf")
    p.add_argument("--show", action="store_true", help="show it in a window")
    p.set_defaults(run=cmd_timeline)
    p = sub.add_parser("explain", help="why key=value... (the app's overrides, model=mlp included) is a miss: the nearest entry and what differs")
    p.add_argument("folder")
    p.add_argument("values", nargs="*")
    p.add_argument("--app", help="the app script: compare what it composes (its YAML, its defaults) for these overrides")
    p.set_defaults(run=cmd_explain)
    p = sub.add_parser("clear", help="clear failed entries (--failed) or chosen uids (--uid)")
    p.add_argument("folder")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--failed", action="store_true")
    group.add_argument("--uid", nargs="+")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(run=cmd_clear)
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(argv[:-1]):  # `--sort -result` (descending): a value, not an option
        if arg == "--sort" and argv[i + 1].startswith("-"):
            argv[i : i + 2] = [f"--sort={argv[i + 1]}"]
            break
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "run", None) is cmd_explain and not any(e.startswith("-") and "=" not in e for e in extra):
        args.values = [*args.values, *extra]  # `explain FOLDER --app app.py model=cnn`: values after --app
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with contextlib.redirect_stdout(SafeWriter(sys.stdout)), contextlib.redirect_stderr(SafeWriter(sys.stderr)):
            return int(args.run(args))  # what a cache holds is shown, never acted on by the terminal
    except BrokenPipeError:  # e.g. `exca-hydra list cache | head`
        sys.stderr = open(os.devnull, "w")  # nothing more to say, and no traceback at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
