"""Redraw the README's "Look at a sweep" pictures from the example app:

    python scripts/readme_figures.py [--launcher exca_slurm]   # default: exca_local, no cluster

Runs the example sweep in a fresh folder (20 jobs, lr x model x layers, a simulated training
time), then the three commands the README shows; writes scripts/readme_figures/{best.md,
plot.png,timeline.png}."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "scripts" / "readme_figures"
SWEEP = ["model=conv,transformer", "model.layers=4,16", "lr=1e-5,1e-4,1e-3,1e-2,1e-1", "seconds_per_layer=0.05"]


def run(*command: str, cwd: Path) -> str:
    print("$", " ".join(command), flush=True)
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stdout + proc.stderr)
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launcher", default="exca_local", choices=["exca_local", "exca_slurm"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "exca_hydra.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "example"  # the figures' titles name it
        work.mkdir()
        os.environ["EXCA_HYDRA_CACHE"] = str(work / "exca_cache")
        run(sys.executable, str(ROOT / "example_app" / "app.py"), "-m", *SWEEP, f"hydra/launcher={args.launcher}",
            f"hydra.sweep.dir={work / 'multirun'}", cwd=work)  # fmt: skip
        best = run(*cli, "table", "exca_cache", "--best", "result", "--max", "--by", "model.name", cwd=work)
        columns = ["model.name", "model.layers", "lr", "result", "duration"]  # the README's width
        lines = best.splitlines()
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        keep = [header.index(c) for c in columns]
        rows = [[cells[i] for i in keep] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)]
        (OUT / "best.md").write_text("\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n")
        run(*cli, "plot", "exca_cache", "--x", "lr", "--by", "model.name,model.layers", "-o", str(OUT / "plot.png"), cwd=work)
        run(*cli, "timeline", "exca_cache", "--sweep", "multirun", "-o", str(OUT / "timeline.png"), cwd=work)
    print(f"wrote {OUT}/best.md, plot.png, timeline.png")


if __name__ == "__main__":
    main()
