"""Slurm rows of the pull workers (issue 16), imported by bench/run.py: mixed durations against
static packing, long jobs against one task per job, and the launcher's pre-sbatch time."""

from __future__ import annotations

import re
import subprocess
import time
import typing as tp
from datetime import datetime
from pathlib import Path

Row = tuple[str, str, str, str, str, str]


def _sweep(run: tp.Callable[..., tuple[float, str]], trivial: Path, py: str, work: Path, name: str, args: list[str]) -> float:
    elapsed, _ = run([py, "app.py", "-m", *args, "hydra/launcher=exca_slurm", "hydra/sweeper=exca", f"hydra.sweep.dir={work / name}"], trivial)
    return elapsed


def rows_pull(n: int, work: Path, partition: str, run: tp.Callable[..., tuple[float, str]], trivial: Path, py: str,
              fmt_s: tp.Callable[[float], str], ratio: tp.Callable[[float, float], str], met: tp.Callable[[bool], str]) -> list[Row]:  # fmt: skip
    common = [f"hydra.launcher.partition={partition}", "hydra.launcher.timeout_min=10"]
    rows: list[Row] = []
    # n jobs of 1 s plus one of 60 s (job 0): pull workers against static jobs_per_task
    mixed = [f"x=range(0,{n + 1})", "+short=1", "+long=60", *common]
    pull = _sweep(run, trivial, py, work, "mixed-pull", mixed)
    static = {k: _sweep(run, trivial, py, work, f"mixed-k{k}", [*mixed, f"hydra.launcher.jobs_per_task={k}"]) for k in (5, 10, 25)}
    best_k = min(static, key=lambda k: static[k])
    shown = ", ".join(f"k={k}: {fmt_s(t)}" for k, t in static.items())
    rows.append((f"{n} jobs of 1 s + one of 60 s, launcher defaults (pull) vs the best static `jobs_per_task`", fmt_s(pull),
                 f"{fmt_s(static[best_k])} (k={best_k}; {shown})", ratio(pull, static[best_k]), "no slower than the best k",
                 met(pull <= static[best_k])))  # fmt: skip
    # 20 jobs of 30 s, array_parallelism=20: the workers must not serialise long jobs
    long = ["x=range(0,20)", "+short=30", "+long=30", "hydra.launcher.array_parallelism=20", *common]
    pull = _sweep(run, trivial, py, work, "long-pull", long)
    one = _sweep(run, trivial, py, work, "long-one", [*long, "hydra.launcher.jobs_per_task=1"])
    rows.append(("20 jobs of 30 s, `array_parallelism=20`, pull vs one task per job", fmt_s(pull), f"{fmt_s(one)} (`jobs_per_task=1`)",
                 ratio(pull, one), "within 10%", met(pull <= one * 1.1)))  # fmt: skip
    # pre-sbatch: from "launching N validated job(s)" to the first "-> Slurm job" line (sbatch included)
    pre = {name: _presbatch(py, trivial, work / f"pre-{name}", [f"x=range(0,{n})", *common, *extra])
           for name, extra in (("pull", []), ("one", ["hydra.launcher.jobs_per_task=1"]))}  # fmt: skip
    rows.append((f"pre-sbatch time of a {n}-job launch (validated jobs -> array submitted), pull vs one task per job",
                 fmt_s(pre["pull"]), f"{fmt_s(pre['one'])} (`jobs_per_task=1`)", ratio(pre["pull"], pre["one"]),
                 "under today's", met(pre["pull"] <= pre["one"])))  # fmt: skip
    return rows


def _stamp(line: str) -> float:
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _presbatch(py: str, trivial: Path, folder: Path, args: list[str]) -> float:
    """Launch, read the two log lines, then stop the launcher and cancel its array."""
    cmd = [py, "app.py", "-m", *args, "hydra/launcher=exca_slurm", "hydra/sweeper=exca", f"hydra.sweep.dir={folder}"]
    proc = subprocess.Popen(cmd, cwd=trivial, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = end = None
    array = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "validated job(s)" in line:
            start = _stamp(line)
        found = re.search(r"-> Slurm job (\d+)", line)
        if found:
            end, array = _stamp(line), found.group(1)
            break
    proc.kill()
    proc.wait()
    if array:
        subprocess.run(["scancel", array], capture_output=True)
        time.sleep(2)
    if start is None or end is None:
        raise RuntimeError(f"no submission found in the output of {' '.join(cmd)}")
    return end - start
