"""Benchmarks of issue 6: each row measured against its peer in the same run, printed as a
markdown table (metric, ours, peer, ratio, target, met?).  It prints; it never asserts.

    python bench/run.py            # full run (N=1000 for rows 4-5, 100 for row 3), no Slurm
    python bench/run.py --slurm    # + the Slurm rows (needs a reachable cluster)
    python bench/run.py --smoke    # tiny N, < 60 s: what CI runs so the benchmarks cannot rot

Peers: Hydra's basic sweeper/launcher, hydra-submitit-launcher (submitit_local/submitit_slurm),
exca 0.6.0 (uids), plain submitit ``map_array``.  Apps: bench/apps/trivial (``return cfg.x * 2``),
bench/apps/typed (pydantic model with a discriminated union picked by the ``model`` config group).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as tp
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TRIVIAL = BENCH / "apps" / "trivial"
TYPED = BENCH / "apps" / "typed"
PY = sys.executable

Row = tuple[str, str, str, str, str, str]  # metric, ours, peer, ratio, target, met


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> tuple[float, str]:
    """Wall time of a whole command (subprocess), and its stdout+stderr; raises if it fails."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "1", **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def ratio(ours: float, peer: float) -> str:
    if not ours or not peer:
        return "-"
    return f"{peer / ours:.1f}x faster" if peer >= ours else f"{ours / peer:.1f}x slower"


def fmt_s(x: float) -> str:
    return f"{x:.2f} s"


def fmt_ms(x: float) -> str:
    return f"{x * 1e3:.2f} ms"


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


# ----- row 1: uid -----
def row_uid(n: int) -> list[Row]:
    import exca
    import pydantic

    import exca_hydra

    def models(infra_cls: tp.Any) -> tp.Any:
        class Conv(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid")
            name: tp.Literal["conv"] = "conv"
            layers: int = 12
            kernel: int = 5

        class Transformer(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid")
            name: tp.Literal["transformer"] = "transformer"
            layers: int = 12
            embeddings: int = 128

        class Optim(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid")
            lr: float = 1e-3
            betas: tuple[float, float] = (0.9, 0.99)

        class Trainer(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid")
            model: Conv | Transformer = pydantic.Field(..., discriminator="name")
            optim: Optim = Optim()
            seed: int = 0
            tags: list[str] = []
            infra: infra_cls = infra_cls()  # type: ignore[valid-type]  # noqa: F821

            @infra.apply
            def run(self) -> int:
                return 0

        return Trainer

    ours_cls, peer_cls = models(exca_hydra.TaskInfra), models(exca.TaskInfra)
    data = [
        {"model": {"name": "transformer" if i % 2 else "conv", "layers": i % 7}, "optim": {"lr": 0.1 / (i + 1)}, "seed": i, "tags": ["a", str(i)]}
        for i in range(n)
    ]
    ours_objs = [ours_cls(**d) for d in data]
    peer_objs = [peer_cls(**d) for d in data]
    start = time.perf_counter()
    for obj in ours_objs:
        exca_hydra.compute_uid(obj)
    ours = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for obj in peer_objs:
        obj.infra.uid()
    peer = (time.perf_counter() - start) / n
    return [("uid of a nested config with a discriminated union (fresh objects)", f"{ours * 1e6:.1f} µs", f"{peer * 1e6:.1f} µs (exca 0.6.0 TaskInfra.uid)",
             ratio(ours, peer), "≤ 20 µs", met(ours <= 20e-6))]  # fmt: skip


# ----- row 2: imports and plugin start-up cost -----
IMPORT_SNIPPET = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
# the same trivial app, with or without this repository (hence hydra_plugins/exca_hydra_plugin)
# importable; the wrapper is identical in both cases
APP_WRAPPER = (
    "import os, sys, runpy; root = {root!r}; hide = os.environ.get('EXCA_BENCH_HIDE') == '1';\n"
    "sys.path[:] = [p for p in sys.path if not (hide and p and os.path.realpath(p) == root)];\n"
    "sys.argv = ['app.py', 'x=1', 'hydra.run.dir={rundir}', 'hydra.output_subdir=null'];\n"
    "runpy.run_path('app.py', run_name='__main__')"
)
SCAN_SNIPPET = (
    "import os, sys, time; root = {root!r}; hide = os.environ.get('EXCA_BENCH_HIDE') == '1';\n"
    "sys.path[:] = [p for p in sys.path if not (hide and p and os.path.realpath(p) == root)];\n"
    "import hydra, hydra.core.plugins, hydra.plugins.launcher;\n"
    "from hydra.core.plugins import Plugins; t = time.perf_counter(); Plugins.instance(); print(time.perf_counter() - t)"
)


def _median_out(cmd: list[str], cwd: Path, reps: int, env: dict[str, str] | None = None) -> float:
    return statistics.median(float(run(cmd, cwd, env)[1].split()[-1]) for _ in range(reps))


def row_imports(reps: int) -> list[Row]:
    rows: list[Row] = []
    ours = _median_out([PY, "-c", IMPORT_SNIPPET.format(mod="exca_hydra")], BENCH, reps)
    ours_full = _median_out([PY, "-c", IMPORT_SNIPPET.format(mod="exca_hydra.bridge.start.app, exca_hydra.infra")], BENCH, reps)
    peer = _median_out([PY, "-c", IMPORT_SNIPPET.format(mod="exca")], BENCH, reps)
    rows.append(("`import exca_hydra` (median)", fmt_ms(ours), f"{fmt_ms(peer)} (`import exca`)", ratio(ours, peer), "≤ 150 ms", met(ours <= 0.150)))
    rows.append(("`import exca_hydra.bridge.start.app, exca_hydra.infra` (what `exca_hydra.main` + TaskInfra load)", fmt_ms(ours_full),
                 f"{fmt_ms(peer)} (`import exca`)", ratio(ours_full, peer), "(≤ 150 ms is for `import exca_hydra`)", "-"))  # fmt: skip
    # Hydra's plugin scan (imports every hydra_plugins module), with and without ours
    with_scan, without_scan = [], []
    with_app, without_app = [], []
    rundir = tempfile.mkdtemp(prefix="exca-bench-start-")
    scan = SCAN_SNIPPET.format(root=str(ROOT))
    app = APP_WRAPPER.format(root=str(ROOT), rundir=rundir)
    for _ in range(2):  # warm-up
        run([PY, "-c", app], TRIVIAL)
    for i in range(reps * 2):
        order = [("0", with_scan, with_app), ("1", without_scan, without_app)]
        if i % 2:
            order.reverse()
        for hide, scans, apps in order:
            scans.append(float(run([PY, "-c", scan], TRIVIAL, {"EXCA_BENCH_HIDE": hide})[1].split()[-1]))
            apps.append(run([PY, "-c", app], TRIVIAL, {"EXCA_BENCH_HIDE": hide})[0])
    shutil.rmtree(rundir, ignore_errors=True)
    added_scan = statistics.median(with_scan) - statistics.median(without_scan)
    added_app = statistics.median(with_app) - statistics.median(without_app)
    rows.append(("cost added to Hydra's plugin scan by our plugin (median, `Plugins.instance()`)", fmt_ms(added_scan),
                 f"{fmt_ms(statistics.median(without_scan))} scan without it", "-", "≤ 3 ms", met(added_scan <= 0.003)))  # fmt: skip
    rows.append(("cost added to a trivial Hydra app start (single run, median wall, interleaved)", fmt_ms(added_app),
                 f"{fmt_s(statistics.median(without_app))} start without it; hydra-submitit-launcher adds 5-9 ms (notes)", "-",
                 "≤ 3 ms", met(added_app <= 0.003)))  # fmt: skip
    return rows


# ----- row 3: N trivial jobs end to end -----
def row_local(n: int, work: Path) -> list[Row]:
    sweep = [f"x=range(0,{n})"]
    times = {}
    variants = [
        ("exca_local", ["hydra/launcher=exca_local", "hydra/sweeper=exca"]),  # our stack: composes once
        ("exca_local_basic_sweeper", ["hydra/launcher=exca_local"]),  # Hydra's sweeper composes each job first
        ("basic", []),
        ("submitit_local", ["hydra/launcher=submitit_local"]),
    ]
    for name, extra in variants:
        times[name] = run([PY, "app.py", "-m", *sweep, *extra, f"hydra.sweep.dir={work / ('local-' + name)}"], TRIVIAL)[0]
    ours = times["exca_local"]
    return [
        (f"{n} trivial jobs end to end, `exca_local` launcher alone (under Hydra's basic sweeper) vs basic launcher",
         fmt_s(times["exca_local_basic_sweeper"]), f"{fmt_s(times['basic'])} (basic)",
         ratio(times["exca_local_basic_sweeper"], times["basic"]), "-", "-"),
        (f"{n} trivial jobs end to end, exca sweeper + `exca_local` vs basic launcher", fmt_s(ours), f"{fmt_s(times['basic'])} (basic)",
         ratio(ours, times["basic"]), "≤ 5 s (at 100 jobs)", met(ours <= 5) if n == 100 else "- (N≠100)"),
        (f"{n} trivial jobs end to end, exca sweeper + `exca_local` vs `submitit_local`", fmt_s(ours), f"{fmt_s(times['submitit_local'])} (submitit_local)",
         ratio(ours, times["submitit_local"]), "≤ 5 s (at 100 jobs)", met(ours <= 5) if n == 100 else "- (N≠100)"),
    ]  # fmt: skip


# ----- row 4: pre-launch cost per job (dry run) -----
HYDRA_COMPOSE = """
import sys, time
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import setup_globals
from hydra.types import RunMode
setup_globals()
k = int(sys.argv[1])
with initialize_config_dir(config_dir=sys.argv[2], version_base="1.3"):
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration("config", ["hydra.sweep.dir=/tmp/exca-bench-unused"], RunMode.MULTIRUN)
    jobs = [[f"seed={i // 2}", "model=" + ("conv", "transformer")[i % 2]] for i in range(k)]
    start = time.perf_counter()
    for overrides in jobs:
        loader.load_sweep_config(master, overrides)
    print((time.perf_counter() - start) / k)
"""


def typed_sweep(n: int) -> list[str]:
    return [f"seed=range(0,{max(1, n // 2)})", "model=conv,transformer"] if n > 1 else ["seed=0"]


def row_prelaunch(n: int, work: Path) -> list[Row]:
    env = {"EXCA_BENCH_CACHE": str(work / "cache-dry")}
    base = [PY, "app.py", "-m", "hydra.sweeper.dry_run=true", f"hydra.sweep.dir={work / 'dry'}"]
    one = statistics.median(run([*base, *typed_sweep(1)], TYPED, env)[0] for _ in range(3))
    many, out = run([*base, *typed_sweep(n)], TYPED, env)
    jobs = len([line for line in out.splitlines() if re.match(r"\s*\d+\s+(missing|cached)", line)])
    ours = (many - one) / max(jobs - 1, 1)
    k = min(jobs, 50)
    peer = float(run([PY, "-c", HYDRA_COMPOSE, str(k), str(TYPED / "conf")], BENCH)[1].split()[-1])
    return [(f"pre-launch cost per job (compose+validate+uid+cache check), {jobs}-job dry run, values + a config group",
             fmt_ms(ours), f"{fmt_ms(peer)} (Hydra `load_sweep_config` per job, {k} jobs; the basic sweeper composes each job twice)",
             ratio(ours, peer), "≤ 2 ms", met(ours <= 0.002))]  # fmt: skip


# ----- row 5: fully cached re-run -----
def row_cached(n: int, work: Path) -> list[Row]:
    env = {"EXCA_BENCH_CACHE": str(work / "cache-rerun")}
    cmd = [PY, "app.py", "-m", *typed_sweep(n), f"hydra.sweep.dir={work / 'rerun'}", "hydra/launcher=exca_local"]
    first, _ = run(cmd, TYPED, env)
    again, out = run(cmd, TYPED, env)
    match = re.search(r"Exca sweeper: (\d+) job\(s\): (\d+) cached, (\d+) running, (\d+) to run", out)
    to_run = int(match.group(4)) if match else -1
    jobs = int(match.group(1)) if match else n
    peer, _ = run([PY, "app.py", "-m", f"x=range(0,{jobs})", f"hydra.sweep.dir={work / 'rerun-basic'}"], TRIVIAL)
    return [(f"fully cached re-run of a {jobs}-job sweep, whole command (first run: {fmt_s(first)})",
             f"{fmt_s(again)}, {to_run} submitted", f"{fmt_s(peer)} (basic: no cache, reruns all {jobs})", ratio(again, peer),
             "≤ 3 s (at 1,000 jobs), 0 submitted", met(again <= 3 and to_run == 0) if jobs == 1000 else met(to_run == 0) + " (0 submitted; N≠1000)")]  # fmt: skip


# ----- row 6 and 7: Slurm -----
PLAIN_SUBMITIT = """
import sys, time, submitit
def double(x):
    return x * 2
n, folder = int(sys.argv[1]), sys.argv[2]
ex = submitit.AutoExecutor(folder=folder + "/%j", cluster="slurm")
ex.update_parameters(timeout_min=5, slurm_partition=sys.argv[3], slurm_array_parallelism=256, name="plain")
jobs = ex.map_array(double, range(n))
assert [j.result() for j in jobs] == [2 * i for i in range(n)]
"""


def _sizes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern))


def rows_slurm(n: int, work: Path, partition: str) -> list[Row]:
    common = [f"x=range(0,{n})", f"hydra.launcher.partition={partition}", "hydra.launcher.timeout_min=5"]
    ours_dir, hsl_dir = work / "slurm-exca", work / "slurm-hsl"
    ours, _ = run([PY, "app.py", "-m", *common, "hydra/launcher=exca_slurm", "hydra/sweeper=exca", f"hydra.sweep.dir={ours_dir}"], TRIVIAL)
    hsl, _ = run([PY, "app.py", "-m", *common, "hydra/launcher=submitit_slurm", "hydra.launcher.array_parallelism=256",
                  f"hydra.sweep.dir={hsl_dir}"], TRIVIAL)  # fmt: skip
    plain, _ = run([PY, "-c", PLAIN_SUBMITIT, str(n), str(work / "slurm-plain"), partition], BENCH)
    packed_dir = work / "slurm-exca-packed"
    packed, _ = run([PY, "app.py", "-m", *common, "hydra/launcher=exca_slurm", "hydra/sweeper=exca", "hydra.launcher.jobs_per_task=10",
                     f"hydra.sweep.dir={packed_dir}"], TRIVIAL)  # fmt: skip
    arrays = len({p.name.split("_")[0] for p in (ours_dir / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name)})
    expected_arrays = -(-n // _max_array_size())
    ours_bytes = (_sizes(ours_dir, "batch-*.pkl") + _sizes(ours_dir, "pool.pkl") + _sizes(ours_dir, "*_submitted.pkl")) / n
    hsl_bytes = _sizes(hsl_dir, "*_submitted.pkl") / n
    return [
        (f"bytes pickled per job ({n}-job Slurm sweep: shared payload / N + per-task pickle)", f"{ours_bytes / 1e3:.1f} KB",
         f"{hsl_bytes / 1e3:.1f} KB (submitit_slurm `*_submitted.pkl`)", f"{hsl_bytes / max(ours_bytes, 1):.1f}x smaller",
         "≤ 4 KB", met(ours_bytes <= 4000)),
        (f"{n}-job trivial sweep on the local Slurm, whole command, launcher defaults (pull workers), vs hydra-submitit-launcher", fmt_s(ours),
         f"{fmt_s(hsl)} (submitit_slurm)", ratio(ours, hsl), "≤ ½ of submitit_slurm", met(ours <= hsl / 2)),
        (f"{n}-job trivial sweep on the local Slurm, whole command, vs plain submitit", fmt_s(ours),
         f"{fmt_s(plain)} (plain `map_array`)", ratio(ours, plain), "below plain", met(ours < plain)),
        (f"{n}-job trivial sweep on the local Slurm, `jobs_per_task=10`, vs plain submitit", fmt_s(packed),
         f"{fmt_s(plain)} (plain `map_array`)", ratio(packed, plain), "below plain", met(packed < plain)),
        (f"sbatch calls for {n} jobs (distinct arrays)", str(arrays), f"⌈N / MaxArraySize⌉ = {expected_arrays}", "-",
         f"= {expected_arrays}", met(arrays == expected_arrays)),
    ]  # fmt: skip


def _max_array_size() -> int:
    from exca_hydra.execution.slurm import max_array_size

    return max_array_size()


# ----- memory -----
def row_memory(n: int, work: Path) -> list[Row]:
    code = (
        "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
        "finally:\n    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    env = {"EXCA_BENCH_CACHE": str(work / "cache-mem")}
    try:
        elapsed, out = run([PY, "-c", code, "app.py", "-m", "hydra.sweeper.dry_run=true", *typed_sweep(n), f"hydra.sweep.dir={work / 'mem'}"], TYPED, env)
    except RuntimeError as e:  # e.g. SystemExit from Hydra is fine; anything else: report it
        return [(f"{n}-job dry run, peak RSS", f"failed: {str(e).splitlines()[0]}", "-", "-", "≤ 500 MB", "NO")]
    rss_mb = int(re.findall(r"MAXRSS (\d+)", out)[-1]) / 1024
    return [(f"{n}-job dry run, peak RSS ({fmt_s(elapsed)})", f"{rss_mb:.0f} MB", "-", "-", "≤ 500 MB (at 10,000 jobs)",
             met(rss_mb <= 500) if n == 10000 else "- (N≠10,000)")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny N, < 60 s, for CI")
    parser.add_argument("--slurm", action="store_true", help="include the Slurm rows")
    parser.add_argument("--n", type=int, default=None, help="jobs for rows 4-5 (default 1000)")
    parser.add_argument("--n-local", type=int, default=None, help="jobs for row 3 (default 100)")
    parser.add_argument("--n-slurm", type=int, default=None, help="jobs for the Slurm rows (default 1000)")
    parser.add_argument("--n-memory", type=int, default=None, help="jobs for the memory row (default 10000)")
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--only", default="", help="comma-separated row names: uid,imports,local,prelaunch,cached,memory,slurm,pull")
    args = parser.parse_args()
    smoke = args.smoke
    n = args.n or (20 if smoke else 1000)
    n_local = args.n_local or (4 if smoke else 100)
    n_slurm = args.n_slurm or (4 if smoke else 1000)
    n_memory = args.n_memory or (50 if smoke else 10000)
    only = set(filter(None, args.only.split(",")))
    work = Path(tempfile.mkdtemp(prefix="exca-bench-"))
    sections: list[tuple[str, tp.Callable[[], list[Row]]]] = [
        ("uid", lambda: row_uid(200 if smoke else 2000)),
        ("imports", lambda: row_imports(3 if smoke else 15)),
        ("local", lambda: row_local(n_local, work)),
        ("prelaunch", lambda: row_prelaunch(n, work)),
        ("cached", lambda: row_cached(n, work)),
        ("memory", lambda: row_memory(n_memory, work)),
    ]
    if args.slurm:
        sections.append(("slurm", lambda: rows_slurm(n_slurm, work, args.partition)))
        from pull_rows import rows_pull  # bench/ is the script's folder

        sections.append(("pull", lambda: rows_pull(n_slurm, work, args.partition, run, TRIVIAL, PY, fmt_s, ratio, met)))
    rows: list[Row] = []
    start = time.perf_counter()
    try:
        for name, section in sections:
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            try:
                rows.extend(section())
            except Exception as e:  # a broken row is reported, the others still run
                rows.append((name, f"ERROR: {type(e).__name__}: {str(e).splitlines()[0][:200]}", "-", "-", "-", "NO"))
            print(f"[bench] {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n`python bench/run.py {' '.join(sys.argv[1:])}` ({'smoke' if smoke else 'full'}; {os.cpu_count()} CPUs; "
          f"total {time.perf_counter() - start:.0f} s)\n")  # fmt: skip
    print("| metric | ours | peer | ratio | target | met? |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
