"""TaskInfra's resources set as ``infra.gpus_per_node=2``, without the ``+`` that ``--help``
prints (issue 22: "preferably accept it without +"), and completed by the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_launcher import APPS, Ctx

NOYAML = APPS / "noyaml" / "app.py"


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def test_infra_resources_are_accepted_without_plus(ctx: Ctx) -> None:
    r = ctx.run(NOYAML, "infra.gpus_per_node=2", "+infra.mem_gb=3", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0, r.err
    infra = yaml.safe_load(r.out)["infra"]
    assert infra["gpus_per_node"] == 2 and infra["mem_gb"] == 3
    r = ctx.run(NOYAML, "infra.gpus_per_node=1,2", f"infra.folder={ctx.cache}")
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 1  # resources never enter the uid: one computation, the second job cached
    r = ctx.run(NOYAML, "infra.gpus_per_nod=2", multirun=False)
    assert r.code == 1 and "Did you mean 'infra.gpus_per_node'" in r.err, r.err


def test_shell_completion_lists_infra_resources(ctx: Ctx) -> None:
    env = {**os.environ, "COMP_LINE": "python app.py infra.gpus"}
    proc = subprocess.run([sys.executable, str(NOYAML), "-sc", "query=bash"], env=env, cwd=ctx.tmp, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["infra.gpus_per_node="]


def test_help_says_which_cache_folder_wins(ctx: Ctx) -> None:
    r = ctx.run(NOYAML, flags=["--help"], multirun=False)
    assert r.code == 0, r.err
    assert "hydra.launcher.folder or hydra.sweeper.folder wins over it" in " ".join(r.out.split()), r.out
    r = ctx.run(NOYAML, "seed=1", f"infra.folder={ctx.tmp / 'model'}", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 0, r.err
    assert len(ctx.cache_entries()) == 1 and not (ctx.tmp / "model").exists()  # as --help says


def test_help_shows_an_interpolation_that_resolves_only_in_a_job(ctx: Ctx) -> None:
    """overlay's conf sets infra.folder: ${oc.env:EXCA_HYDRA_CACHE}; --help without that variable
    shows the interpolation as written (it raised a traceback)."""
    env = {k: v for k, v in os.environ.items() if k != "EXCA_HYDRA_CACHE"}
    proc = subprocess.run([sys.executable, str(APPS / "overlay" / "app.py"), "--help"], env=env, cwd=ctx.tmp,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "${oc.env:EXCA_HYDRA_CACHE}" in rows["infra.folder"] and rows["seed"].split()[2] == "7", proc.stdout
