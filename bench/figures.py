"""Issue 24: `exca-hydra plot` and `timeline` on a 1,000-job sweep, against what users write today
(a pandas + matplotlib script that unpickles every result), measured in the same run.

    python bench/figures.py [--n-layers 50] [--launcher exca_local|exca_slurm] [--repeat 3]

The sweep: the example app, model=conv,transformer x model.layers=1..N x 10 learning rates
(1,000 jobs with the default N=50). Each command is timed as a whole subprocess (Python start,
imports, reading, drawing, writing the PNG); the median of --repeat runs. It also counts the
files our commands unpickle while reading the cache (in-process, pickle.load patched): 0 expected.
Prints a markdown table, asserts nothing."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LRS = "1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1,3e-1"

PEER = '''
import pickle, sys, yaml
from pathlib import Path
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = []
for entry in Path(sys.argv[1]).glob("*/*"):
    if not (entry / "result.pkl").exists():
        continue
    config = yaml.safe_load((entry / "config.yaml").read_text())
    with open(entry / "result.pkl", "rb") as f:
        result = pickle.load(f)
    rows.append({"lr": config["lr"], "model": config["model"]["name"], "layers": config["model"]["layers"], "result": result})
frame = pd.DataFrame(rows)
fig, ax = plt.subplots()
for (model, layers), group in frame.sort_values("lr").groupby(["model", "layers"]):
    ax.plot(group["lr"], group["result"], marker="o", label=f"{model}, {layers}")
ax.set_xscale("log"); ax.set_xlabel("lr"); ax.set_ylabel("result"); ax.legend(fontsize="small")
fig.savefig(sys.argv[2], dpi=120, bbox_inches="tight")
'''


def timed(command: list[str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unpickled(cache: Path, sweep: Path, out: Path) -> int:
    """Files unpickled by plot + timeline reading this cache, in this process."""
    import pickle

    from exca_hydra.plot import plot
    from exca_hydra.timeline import timeline

    count = [0]
    load, loads = pickle.load, pickle.loads

    def counting_load(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return load(*args, **kwargs)  # type: ignore[arg-type]

    def counting_loads(*args: object, **kwargs: object) -> object:
        count[0] += 1
        return loads(*args, **kwargs)  # type: ignore[arg-type]

    pickle.load, pickle.loads = counting_load, counting_loads  # type: ignore[assignment]
    try:
        plot(cache, "lr", "result", ["model.name", "model.layers"], output=out / "p.png")
        timeline(cache, sweep, output=out / "t.png")
    finally:
        pickle.load, pickle.loads = load, loads  # type: ignore[assignment]
    return count[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layers", type=int, default=50)
    parser.add_argument("--launcher", default="exca_local", choices=["exca_local", "exca_slurm"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "EXCA_HYDRA_CACHE": str(work / "exca_cache")}
        layers = ",".join(str(i) for i in range(1, args.n_layers + 1))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "example_app" / "app.py"), "-m", "model=conv,transformer",
                        f"model.layers={layers}", f"lr={LRS}", f"hydra/launcher={args.launcher}",
                        f"hydra.sweep.dir={work / 'multirun'}"], cwd=work, env=env, check=True, capture_output=True)  # fmt: skip
        sweep_s = time.perf_counter() - start
        jobs = 2 * args.n_layers * 10
        cli = [sys.executable, "-m", "exca_hydra.cli"]
        ours_plot = timed([*cli, "plot", "exca_cache", "--x", "lr", "--by", "model.name,model.layers", "-o", "ours.png"], work, args.repeat)
        ours_timeline = timed([*cli, "timeline", "exca_cache", "--sweep", "multirun", "-o", "timeline.png"], work, args.repeat)
        (work / "peer.py").write_text(PEER)
        peer = timed([sys.executable, "peer.py", "exca_cache", "peer.png"], work, args.repeat)
        count = unpickled(work / "exca_cache", work / "multirun", work)
    print(f"{jobs} jobs ({args.launcher}, sweep took {sweep_s:.0f} s); medians of {args.repeat} whole commands\n")
    print("| command | ours | peer (pandas + matplotlib script, unpickles every result) | ratio | target | met? |")
    print("|---|---|---|---|---|---|")
    print(f"| `exca-hydra plot` | {ours_plot:.2f} s | {peer:.2f} s | {peer / ours_plot:.1f}x faster | < 2 s | {'yes' if ours_plot < 2 else 'no'} |")
    print(f"| `exca-hydra timeline --sweep` | {ours_timeline:.2f} s | - | - | < 2 s | {'yes' if ours_timeline < 2 else 'no'} |")
    print(f"| files unpickled reading the cache (plot + timeline) | {count} | {jobs} | - | 0 | {'yes' if count == 0 else 'no'} |")


if __name__ == "__main__":
    main()
