"""A model class defined in the app script, run in Slurm jobs (issue 22): exca_slurm's pull
workers and submitit_slurm's jobs compute it under the script's name, and ``uid_folder()``
inside the Slurm job is the entry's own folder (checkpoints land next to the result)."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_launcher import APPS, Ctx

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

INSCRIPT = APPS / "inscript" / "models_app.py"


def test_a_model_of_the_script_in_slurm_jobs(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    folder = ctx.cache / "models_app.Exp.train,0"
    base = (f"infra.folder={ctx.cache}", "hydra/sweeper=basic", "hydra.launcher.timeout_min=5")
    r = ctx.run(INSCRIPT, "seed=1", *base, "hydra/launcher=exca_local")
    assert r.code == 0, r.err
    for seed, launcher in ((1, "exca_slurm"), (1, "submitit_slurm"), (6, "exca_slurm"), (7, "submitit_slurm")):
        r = ctx.run(INSCRIPT, f"seed={seed}", *base, f"hydra/launcher={launcher}")
        assert r.code == 0, (launcher, r.err)
    assert [p.name for p in ctx.cache.iterdir()] == [folder.name]
    lines = ctx.lines()
    assert len(lines) == 3, lines  # seed=1 computed once, by the local run
    for seed, line in zip((1, 6, 7), lines):
        assert line.startswith(f"train seed={seed} folder={folder}/seed={seed}-"), line
        assert (folder / line.rsplit("/", 1)[1] / "result.pkl").exists()  # uid_folder() is the entry's
