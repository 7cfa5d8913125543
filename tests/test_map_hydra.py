"""MapInfra (issue 23) from Hydra, the command line, the README, and a real Slurm."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing as tp
from pathlib import Path

import pytest

from exca_hydra.cache.itemstore import ItemStore
from exca_hydra.cli import main as cli
from map_models import Vectors

ROOT = Path(__file__).resolve().parent.parent
APP = Path(__file__).resolve().parent / "apps" / "mapfeat" / "app.py"


def sweep(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(EXCA_MAP_CACHE=str(tmp / "cache"), EXCA_TEST_LOG=str(tmp / "computed.log"), EXCA_TEST_SLEEP="0.01")
    n = len(list(tmp.glob("sweep*")))
    cmd = [sys.executable, str(APP), "-m", *args, f"hydra.sweep.dir={tmp / f'sweep{n}'}"]
    return subprocess.run(cmd, cwd=APP.parent, env=env, capture_output=True, text=True, timeout=300)


def computed(tmp: Path) -> list[int]:
    path = tmp / "computed.log"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_a_sweep_shares_one_item_cache_across_its_jobs_and_across_sweeps(tmp_path: Path) -> None:
    run = sweep(tmp_path, "start=0,10,20", "lr=1,2")  # 6 jobs, items 0..39 overlapping, at once
    assert run.returncode == 0, run.stderr
    assert "6 completed" in run.stdout + run.stderr
    assert sorted(computed(tmp_path)) == list(range(40)), "an item was computed twice or not at all"
    run = sweep(tmp_path, "start=5,15", "lr=3")  # other jobs, cached items
    assert run.returncode == 0, run.stderr
    assert len(computed(tmp_path)) == 40
    run = sweep(tmp_path, "start=30")
    assert run.returncode == 0, run.stderr
    assert sorted(computed(tmp_path)) == list(range(50))  # only 40..49 were new
    assert "1520.0" in sweep(tmp_path, "start=0").stdout  # sum of 8 * (0..19)


def test_the_command_line_lists_shows_and_clears_mapinfra_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    model = Vectors(scale=2.0, infra={"folder": cache})
    list(model.vectors([f"x{i}" for i in range(1500)]))
    folder = tp.cast(Path, model.infra.uid_folder())
    assert cli(["list", str(cache)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"items +map_models\.Vectors\.vectors,0/scale=2", out) and re.search(r"scale=2.0 \(1500 items, 1\d\d kB\)", out)
    assert cli(["show", str(folder)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"items: +1500 items, 1\d\d kB", out) and "scale: 2.0" in out
    before = sorted(p.name for p in folder.rglob("*"))
    cli(["list", str(cache)])
    assert sorted(p.name for p in folder.rglob("*")) == before  # reading never acts
    assert cli(["clear", str(cache), "--uid", folder.name]) == 0
    assert not folder.exists()


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python: MapInfra") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python\n") + 10)]
    (tmp_path / "example.py").write_text(code + "\nprint(len(out), [float(o[0]) for o in out])\n")
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3 [1.0, 1.0, 1.0]"
    (folder,) = (tmp_path / "map_cache").glob("*/*")
    assert len(ItemStore(folder).summary()) == 3 and ItemStore.get(folder).missing(["a", "b", "c", "d"]) == []
    assert len(list((folder / "items").glob("b-*.dat"))) == 2  # "d" alone in the second batch


@pytest.mark.slurm
def test_slurm_max_jobs_4_over_1000_items(slurm_cluster: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    items = [f"s{i}" for i in range(1000)]
    model = Vectors(log=str(tmp_path), infra={"folder": cache, "cluster": "slurm", "max_jobs": 4, "timeout_min": 10})
    out = list(model.vectors(items))
    assert [o[0] for o in out] == [float(len(x)) for x in items]
    assert sorted(computed_items(tmp_path)) == sorted(items)
    folder = tp.cast(Path, model.infra.uid_folder())
    assert len(list((folder / "items").glob("b-*.dat"))) == 4  # one batch per job
    assert (folder / "logs").is_dir()
    again = Vectors(log=str(tmp_path), infra={"folder": cache, "cluster": "slurm", "max_jobs": 4})
    assert len(list(again.vectors(items + ["s1000"]))) == 1001  # one job for the one missing item
    assert len(computed_items(tmp_path)) == 1001
    # one array, a task per job, instead of pull workers
    array = Vectors(log=str(tmp_path), infra={"folder": cache, "cluster": "slurm", "max_jobs": 4, "slurm_jobs_per_task": 1})
    new = [f"t{i}" for i in range(8)]
    assert [o[0] for o in array.vectors(new + items[:3])] == [2.0] * 8 + [2.0, 2.0, 2.0]
    assert sorted(computed_items(tmp_path)[1001:]) == sorted(new)
    assert len(list((folder / "items").glob("b-*.dat"))) == 4 + 1 + 4


def computed_items(tmp: Path) -> list[str]:
    return (tmp / "computed.log").read_text().split()
