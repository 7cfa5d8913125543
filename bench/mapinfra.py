"""MapInfra beside exca 0.6.0's: same items, same machine, same run.

    PYTHONPATH=. python bench/mapinfra.py [--repeat 3]

Rows: computing 10,000 small items locally (cluster=None); reading 10,000 and 100,000 cached items
in a new process; files on disk; peak memory of the process reading 100,000. Values: 16-float
numpy vectors, Python values that are JSON-able (a small dict) and not (a tuple with a set:
pickled; 10,000 items only, as exca writes one file per item). ``keep_in_ram=False`` for both. Each timing is
the best of ``--repeat`` runs, each in a fresh process (imports and the model excluded: the time
of ``list(model.method(items))``). Peak memory: ru_maxrss of the reading process.
"""


import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import typing as tp
from pathlib import Path


def _model(lib: str, kind: str) -> tp.Any:
    import numpy as np
    import pydantic

    if lib == "exca":
        from exca import MapInfra
    else:
        from exca_hydra import MapInfra

    cache_type = "Pickle" if kind == "pickled" else None  # exca's default refuses a tuple

    class Bench(pydantic.BaseModel):
        kind: str = "vector"
        infra: MapInfra = MapInfra(keep_in_ram=False)

        @infra.apply(item_uid=str, cache_type=cache_type)
        def compute(self, items: tp.Iterable[str]) -> tp.Iterator[tp.Any]:
            for item in items:
                i = int(item[4:])
                if self.kind == "vector":
                    yield np.arange(16, dtype=np.float64) + i
                elif self.kind == "python":  # JSON-able: in the index itself
                    yield {"id": i, "name": item, "scores": [i / 2, i / 3]}
                else:  # not JSON-able: pickled
                    yield (i, item, {i})

    Bench.__qualname__ = Bench.__name__ = f"Bench_{lib.replace('-', '_')}"
    return Bench


def child(lib: str, kind: str, op: str, folder: str, n: int) -> dict[str, float]:
    Bench = _model(lib, kind)
    obj = Bench(kind=kind, infra={"folder": folder})
    items = [f"item{i}" for i in range(n)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = list(obj.compute(items))
    elapsed = time.perf_counter() - start
    assert len(out) == n
    check = out[n // 2]
    if kind == "vector":
        assert float(check[0]) == n // 2, check
    elif kind == "python":
        assert check["id"] == n // 2, check
    else:
        assert check[2] == {n // 2}, check
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "peak_mb": peak / 1024, "base_mb": rss0 / 1024}


def run_child(lib: str, kind: str, op: str, folder: Path, n: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", lib, kind, op, str(folder), str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def bench(root: Path, repeat: int, kinds: tp.Sequence[str]) -> list[tuple[str, str, str, float, float]]:
    rows = []
    for kind in kinds:
        big_rows = kind != "pickled"  # exca pickles one file per item: 100,000 take over 20 min
        for lib in ("exca", "exca-hydra"):
            times: dict[str, list[float]] = {"compute 10,000": [], "read 10,000": [], "read 100,000": []}
            peak: list[float] = []
            files = 0
            for r in range(repeat):
                small, big = root / f"{lib}-{kind}-{r}-10k", root / f"{lib}-{kind}-{r}-100k"
                times["compute 10,000"].append(run_child(lib, kind, "compute", small, 10_000)["seconds"])
                times["read 10,000"].append(run_child(lib, kind, "read", small, 10_000)["seconds"])
                if big_rows:
                    run_child(lib, kind, "compute", big, 100_000)
                    got = run_child(lib, kind, "read", big, 100_000)
                    times["read 100,000"].append(got["seconds"])
                    peak.append(got["peak_mb"])
                    files = count_files(big)
                    shutil.rmtree(big)
                else:
                    files = count_files(small)
                shutil.rmtree(small)
            for row, values in times.items():
                if values:
                    rows.append((kind, row, lib, min(values), 0.0))
            rows.append((kind, f"files ({'100,000' if big_rows else '10,000'} items)", lib, float(files), 0.0))
            if peak:
                rows.append((kind, "peak MB reading 100,000", lib, min(peak), 0.0))
            print(f"  done: {kind} {lib}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[tuple[str, str, str, float, float]]) -> str:
    by: dict[tuple[str, str], dict[str, float]] = {}
    for kind, row, lib, value, _ in rows:
        by.setdefault((kind, row), {})[lib] = value
    lines = ["| values | row | exca 0.6.0 | exca-hydra | ratio |", "|---|---|---:|---:|---:|"]
    for (kind, row), libs in by.items():
        a, b = libs["exca"], libs["exca-hydra"]
        fmt = (lambda v: f"{v:.0f}") if not row.startswith(("compute", "read")) else (lambda v: f"{v:.3f} s")
        lines.append(f"| {kind} | {row} | {fmt(a)} | {fmt(b)} | {a / b if b else float('inf'):.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="vector,python,pickled", help="comma-separated: vector, python, pickled")
    args = parser.parse_args()
    if args.child:
        lib, kind, op, folder, n = args.child
        print(json.dumps(child(lib, kind, op, folder, int(n))))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-mapinfra-"))
    try:
        print(table(bench(root, args.repeat, args.kinds.split(","))))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
