"""``exca-hydra``: look into a cache folder: list entries, show one, explain a miss, clear entries."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import typing as tp
from pathlib import Path

import yaml

from .store import CONFIG, JOB, UID_CONFIG, Entry
from .uid import flatten


def _is_entry(folder: Path) -> bool:
    return (folder / UID_CONFIG).exists()


def iter_entries(root: Path) -> tp.Iterator[Entry]:
    """Entries under a cache root, a method folder, or one uid folder."""
    if _is_entry(root):
        yield Entry(root)
        return
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for method_dir in candidates:
        for folder in sorted(method_dir.iterdir()) if method_dir.is_dir() else []:
            if folder.is_dir() and _is_entry(folder):
                yield Entry(folder)


def status_of(entry: Entry, ask_backend: bool) -> str:
    if ask_backend:
        from .executor import entry_status

        return entry_status(entry)
    status = entry.file_status()
    if status is not None:
        return status
    return "submitted" if (entry.folder / JOB).exists() else "not submitted"


def _uid_cfg(entry: Entry) -> dict[str, tp.Any]:
    try:
        return yaml.safe_load((entry.folder / UID_CONFIG).read_text("utf8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for entry in iter_entries(Path(args.folder)):
        status = status_of(entry, args.check)
        if args.status and status != args.status:
            continue
        values = ", ".join(f"{k}={v}" for k, v in flatten(_uid_cfg(entry)).items()) or "(defaults)"
        rows.append((entry.folder.parent.name, status, entry.uid, values))
    for method, status, uid, values in rows:
        print(f"{status:<13} {method}/{uid}\n              {values}")
    print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    entry = Entry(Path(args.entry))
    if not _is_entry(entry.folder):
        print(f"{entry.folder} is not a cache entry (no {UID_CONFIG})", file=sys.stderr)
        return 1
    print(f"entry:   {entry.folder}\nstatus:  {status_of(entry, args.check)}")
    for name in (CONFIG, UID_CONFIG, "result.pkl", "error.txt"):
        path = entry.path(name)
        print(f"{name + ':':<12} {path if path.exists() else '-'}")
    job = entry.read_job()
    if job:
        print(f"job:     {job.get('backend')} {job.get('job_id')}  log: {job.get('stderr')}")
    error = entry.error_text().strip().splitlines()
    if error:
        print("error:   " + error[-1])
    print("--- uid config ---\n" + yaml.safe_dump(_uid_cfg(entry), sort_keys=False), end="")
    return 0


def _config(entry: Entry) -> dict[str, tp.Any]:
    try:
        return yaml.safe_load((entry.folder / CONFIG).read_text("utf8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


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


def nearest(root: Path, wanted: dict[str, tp.Any]) -> list[tuple[int, Entry, dict[str, tuple[tp.Any, tp.Any]]]]:
    """Cached entries ordered by how many fields differ from ``wanted`` (dotted keys). A wanted
    key is compared with the entry's full config (so a value equal to the default matches); a
    non-default field of the entry that ``wanted`` does not name differs from the default.  A
    key naming a sub-config (a config group: ``model=mlp``) is compared with its tag."""
    out = []
    entries = list(iter_entries(root))
    tag_keys = _tag_keys(entries, [key for key, value in wanted.items() if isinstance(value, str)])
    for entry in entries:
        config = _config(entry)
        full, differing = flatten(config), flatten(_uid_cfg(entry))
        diff = {}
        for key, value in wanted.items():
            if key in full or key in differing or not isinstance(_at(config, key), dict):
                diff[key] = (value, full.get(key, differing.get(key, "<absent>")))
            else:  # a group selection: the tag of the sub-config there
                diff[key] = (value, _tag(_at(config, key), tag_keys.get(key, ()), value))
        for key, value in differing.items():
            parent = key.rpartition(".")[0]
            if key in wanted or (parent in wanted and parent not in full and value == diff[parent][1]):
                continue  # named, or the tag a group selection was compared with
            diff[key] = ("<default>", value)
        diff = {key: pair for key, pair in sorted(diff.items()) if pair[0] != pair[1]}
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
    try:
        wanted = parse_values(args.values)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    ranked = nearest(Path(args.folder), wanted)
    if not ranked:
        print("No cached entries there.")
        return 1
    count, entry, diff = ranked[0]
    if count == 0:
        print(f"Cached: {entry.folder} ({status_of(entry, False)})")
        return 0
    print(f"Miss. Nearest cached entry: {entry.folder}")
    for key, (want, have) in diff.items():
        print(f"  {key}: wanted {json.dumps(want)}, cached {json.dumps(have)}")
    return 1


def cmd_clear(args: argparse.Namespace) -> int:
    chosen = []
    for entry in iter_entries(Path(args.folder)):
        if args.uid and entry.uid not in args.uid:
            continue
        if args.failed and entry.file_status() != "failed":
            continue
        chosen.append(entry)
    for entry in chosen:
        print(("would clear " if args.dry_run else "clearing ") + str(entry.folder))
        if args.dry_run:
            continue
        if args.failed:
            entry.clear()  # the configs stay; the next run recomputes
        else:
            shutil.rmtree(entry.folder)
    print(f"{len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'} {'selected' if args.dry_run else 'cleared'}")
    return 0


def main(argv: tp.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exca-hydra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="entries with status and uid values")
    p.add_argument("folder")
    p.add_argument("--status", choices=["completed", "failed", "running", "submitted", "not submitted"])
    p.add_argument("--check", action="store_true", help="ask Slurm/the OS about submitted jobs")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("show", help="one entry: status, files, job, last error line")
    p.add_argument("entry")
    p.add_argument("--check", action="store_true")
    p.set_defaults(run=cmd_show)
    p = sub.add_parser("explain", help="why key=value... (the app's overrides, model=mlp included) is a miss: the nearest entry and what differs")
    p.add_argument("folder")
    p.add_argument("values", nargs="*")
    p.set_defaults(run=cmd_explain)
    p = sub.add_parser("clear", help="clear failed entries (--failed) or chosen uids (--uid)")
    p.add_argument("folder")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--failed", action="store_true")
    group.add_argument("--uid", nargs="+")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(run=cmd_clear)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # e.g. `exca-hydra list cache | head`
        sys.stderr = open(os.devnull, "w")  # nothing more to say, and no traceback at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
