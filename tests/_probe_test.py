"""Apps shaped the way Hydra users write them (issue 22, config section), run as subprocesses:
a YAML file switching a nested union member, a field of another member, TaskInfra resources on
the command line, the default launcher/sweeper, models in the script, hydra-zen, completion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from test_launcher import Ctx
APPS = Path("/tmp/probe/apps")

SWITCH = APPS / "switch" / "app.py"
NOYAML = APPS / "noyaml" / "app.py"
LAUNCH = ("hydra/launcher=exca_local", "hydra/sweeper=exca")


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


# ----- 1. a layer selecting another union member drops the old member's defaults -----
def test_yaml_switching_a_nested_union_member_composes(ctx: Ctx) -> None:
    r = ctx.run(SWITCH, "model=cnn", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0, r.err
    assert yaml.safe_load(r.out)["model"]["opt"] == {"type": "sgd", "lr": 0.01, "momentum": 0.9}  # SGD's lr, no beta
    r = ctx.run(SWITCH, "model=cnn,resnet", f"infra.folder={ctx.cache}", *LAUNCH)
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == [
        "train seed=1 model=cnn opt=SGD(type='sgd', lr=0.01, momentum=0.9)",
        "train seed=1 model=resnet opt=None",
    ]


def test_an_override_of_the_tag_selects_the_member(ctx: Ctx) -> None:
    """``model.opt.name=sgd`` used to keep Adam's lr (0.001) under SGD's tag: a wrong config."""
    r = ctx.run(NOYAML, "model=cnn", "model.opt.name=sgd", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0, r.err
    assert yaml.safe_load(r.out)["model"]["opt"] == {"name": "sgd", "lr": 0.01, "momentum": 0.0}
    r = ctx.run(NOYAML, "model=cnn", "model.opt.name=sgd,adam", *LAUNCH)
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["train seed=3 model=cnn opt=adam data=mnist", "train seed=3 model=cnn opt=sgd data=mnist"]


# ----- 2. a field of another union member names that member -----
@pytest.mark.parametrize(
    "app, args, expected",
    [
        (SWITCH, ("model.patch=8",), "model=resnet (ResNet) has no field 'patch'; it is a field of ViT (model=vit): select it with model=vit"),
        (SWITCH, ("-m", "model=cnn,vit", "model.patch=8"), "model=cnn (CNN) has no field 'patch'"),
        (SWITCH, ("model=cnn", "model.opt.beta=0.5"), "model/opt=sgd (SGD) has no field 'beta'; it is a field of Adam"),  # the YAML's choice
        (NOYAML, ("model=cnn", "model.opt.momentum=0.5"), "select it with model/opt=sgd"),
    ],
)
def test_a_field_of_another_member_says_how_to_select_it(ctx: Ctx, app: Path, args: tuple[str, ...], expected: str) -> None:
    r = ctx.run(app, *args, *LAUNCH, multirun=False)
    assert r.code == 1 and expected in r.err, r.err
    assert "+model" not in r.err and "Traceback" not in r.err
    ctx.assert_nothing_ran()


# ----- 3. what --help lists works as printed -----
def test_infra_resources_are_set_as_help_prints_them(ctx: Ctx) -> None:
    r = ctx.run(NOYAML, flags=["--help"], multirun=False)
    assert "Override any of them (foo.bar=value)" in r.out and "infra.gpus_per_node" in r.out
    r = ctx.run(NOYAML, "infra.gpus_per_node=2", "infra.mem_gb=3", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0, r.err
    infra = yaml.safe_load(r.out)["infra"]
    assert infra["gpus_per_node"] == 2 and infra["mem_gb"] == 3
    r = ctx.run(NOYAML, "infra.gpus_per_node=1,2", f"infra.folder={ctx.cache}", *LAUNCH)
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 1  # resources never enter the uid: one computation, the second job cached
    r = ctx.run(NOYAML, "infra.gpus_per_nod=2", multirun=False)
    assert r.code == 1 and "Did you mean 'infra.gpus_per_node'" in r.err, r.err


# ----- 4. an app without YAML runs under exca's launcher and sweeper -----
def test_an_app_without_yaml_caches_under_the_exca_plugins(ctx: Ctx) -> None:
    args = ("model=mlp,cnn", f"infra.folder={ctx.cache}")
    r = ctx.run(NOYAML, *args)  # no hydra/launcher=..., hydra/sweeper=...
    assert r.code == 0, r.err
    assert "2 job(s): 0 cached, 0 running, 2 to run" in r.out + r.err, r.out + r.err
    r = ctx.run(NOYAML, *args)
    assert "2 cached, 0 running, 0 to run" in r.out + r.err and len(ctx.lines()) == 2
    r = ctx.run(NOYAML, "hydra/launcher=basic", "hydra/sweeper=basic", flags=["--cfg", "hydra"], multirun=False)
    assert "BasicLauncher" in r.out and "BasicSweeper" in r.out  # overridable as usual
    r = ctx.run(SWITCH, flags=["--cfg", "hydra"], multirun=False)  # a primary YAML chooses its own
    assert "BasicLauncher" in r.out, r.out


def test_help_says_where_the_cache_goes(ctx: Ctx) -> None:
    r = ctx.run(NOYAML, flags=["--help"], multirun=False)
    assert r.code == 0, r.err
    assert "Launcher: exca_local, sweeper: exca" in r.out
    assert "Results are cached under: nowhere" in r.out and "Set the folder with infra.folder=PATH" in r.out
    r = ctx.run(NOYAML, f"infra.folder={ctx.cache}", flags=["--help"], multirun=False)
    assert f"Results are cached under: {ctx.cache} (infra.folder)" in r.out, r.out
    r = ctx.run(NOYAML, f"hydra.launcher.folder={ctx.cache}/l", flags=["--help"], multirun=False)
    assert f"Results are cached under: {ctx.cache}/l (hydra.launcher.folder)" in r.out, r.out


# ----- 5. a model class of the app script: one folder whatever runs the job -----
INSCRIPT = APPS / "inscript" / "models_app.py"


def test_a_model_of_the_script_is_cached_under_the_programs_name(ctx: Ctx) -> None:
    folder = ctx.cache / "models_app.Exp.train,0"
    args = ("seed=1,2", f"infra.folder={ctx.cache}", "hydra/sweeper=basic")  # the launcher runs every job
    r = ctx.run(INSCRIPT, *args, "hydra/launcher=submitit_local")
    assert r.code == 0, r.err
    assert [p.name for p in ctx.cache.iterdir()] == [folder.name]
    assert sorted(ctx.lines()) == [f"train seed={s} folder={e}" for s, e in zip((1, 2), sorted(folder.iterdir()))]
    for launcher in ("joblib", "exca_local", "submitit_local"):
        r = ctx.run(INSCRIPT, *args, f"hydra/launcher={launcher}")
        assert r.code == 0, r.err
        assert len(ctx.lines()) == 2, launcher  # cache hits: nothing computed again
    assert [p.name for p in ctx.cache.iterdir()] == [folder.name]
    r = ctx.run(INSCRIPT, "seed=3", f"infra.folder={ctx.cache}", "hydra/launcher=joblib", "hydra/sweeper=basic")
    assert r.code == 0, r.err
    assert ctx.lines()[-1].startswith(f"train seed=3 folder={folder}/seed=3-")  # uid_folder() in the job
    r = ctx.run(INSCRIPT, "seed=1,2,3", f"infra.folder={ctx.cache}")  # exca's own plan agrees
    assert "3 cached, 0 running, 0 to run" in r.out + r.err, r.out + r.err


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_a_model_of_the_script_in_slurm_jobs(ctx: Ctx) -> None:
    """In a Slurm job (exca's or submitit's), the entry and uid_folder() are the program's."""
    folder = ctx.cache / "models_app.Exp.train,0"
    base = (f"infra.folder={ctx.cache}", "hydra/sweeper=basic", "hydra.launcher.timeout_min=5")
    r = ctx.run(INSCRIPT, "seed=1", *base, "hydra/launcher=exca_local")
    assert r.code == 0, r.err
    for seed, launcher in ((1, "exca_slurm"), (1, "submitit_slurm"), (6, "exca_slurm"), (7, "submitit_slurm")):
        r = ctx.run(INSCRIPT, f"seed={seed}", *base, f"hydra/launcher={launcher}")
        assert r.code == 0, r.err
    assert [p.name for p in ctx.cache.iterdir()] == [folder.name]
    lines = ctx.lines()
    assert len(lines) == 3, lines  # seed=1 computed once, by the local run
    for seed, line in zip((1, 6, 7), lines):
        assert line.startswith(f"train seed={seed} folder={folder}/seed={seed}-"), line
        assert (folder / line.rsplit("/", 1)[1] / "result.pkl").exists()


# ----- 6. a hydra-zen app (zen(task).hydra_main, models in a module) -----
ZEN = APPS / "zen" / "app.py"


def test_a_hydra_zen_app_runs_and_caches_under_exca_local(ctx: Ctx) -> None:
    args = ("trainer.lr=0.1,0.2", f"hydra.launcher.folder={ctx.cache}", "hydra/launcher=exca_local")
    for _ in range(2):
        r = ctx.run(ZEN, *args)
        assert r.code == 0, r.err
        assert sorted(ctx.lines()) == ["train lr=0.1 epochs=2", "train lr=0.2 epochs=2"]  # the 2nd run: cached
    assert [p.name for p in ctx.cache.iterdir()] == ["app.task,0"] and len(list((ctx.cache / "app.task,0").iterdir())) == 2
    r = ctx.run(ZEN, "trainer.lr=0.3", "hydra/launcher=exca_local")  # no cache folder: its return value comes back
    assert r.code == 0 and "'train lr=0.3 epochs=2'" in r.out + r.err, r.err
    r = ctx.run(ZEN, "trainer.lr=0.1,0.4", f"hydra.sweeper.folder={ctx.cache}", "hydra/launcher=exca_local", "hydra/sweeper=exca")
    assert r.code == 0 and "1 cached, 0 running, 1 to run" in r.out + r.err, r.out + r.err
    r = ctx.run(ZEN, "trainer.lr=0.5", f"trainer.infra.folder={ctx.tmp / 'model'}", "hydra/launcher=exca_local")
    assert r.code == 0 and [p.name for p in (ctx.tmp / "model").iterdir()] == ["zen_models.Trainer.train,0"], r.err


# ----- 7. shell completion -----
def _complete(ctx: Ctx, app: Path, line: str) -> list[str]:
    import os
    import subprocess

    env = {**os.environ, "COMP_LINE": line}
    proc = subprocess.run([sys.executable, str(app), "-sc", "query=bash"], env=env, cwd=ctx.tmp, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_shell_completion_lists_generated_groups_fields_and_options(ctx: Ctx) -> None:
    r = ctx.run(NOYAML, flags=["-sc", "install=bash"], multirun=False)
    assert r.code == 0 and "hydra_bash_completion" in r.out, r.err
    assert {"seed=", "model", "model.", "data=", "tags.", "infra."} <= set(_complete(ctx, NOYAML, "python app.py "))
    assert _complete(ctx, NOYAML, "python app.py model=") == ["model=cnn", "model=mlp"]
    assert _complete(ctx, NOYAML, "python app.py model=cnn model/opt=") == ["model/opt=adam", "model/opt=sgd"]
    assert _complete(ctx, NOYAML, "python app.py model=cnn model.") == ["model.channels=", "model.name=", "model.opt."]
    assert _complete(ctx, NOYAML, "python app.py model.opt.") == ["model.opt.lr=", "model.opt.momentum=", "model.opt.name="]
    assert _complete(ctx, NOYAML, "python app.py infra.gpus") == ["infra.gpus_per_node="]  # accepted without +
    assert "model=cnn" in _complete(ctx, SWITCH, "python app.py -m model=")
    ctx.assert_nothing_ran()


# ----- 8. explain composes the app's YAML -----
def test_explain_composes_the_apps_yaml(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    from exca_hydra.cli import main as cli

    overlay = APPS / "overlay" / "app.py"  # conf/config.yaml: seed 7, model cnn; conf/model/cnn.yaml: channels 16
    r = ctx.run(overlay, "model=cnn,small")
    assert r.code == 0, r.err
    assert cli(["explain", "--app", str(overlay), str(ctx.cache)]) == 0  # what the app runs by default
    assert "Cached:" in capsys.readouterr().out
    assert cli(["explain", "--app", str(overlay), str(ctx.cache), "model=small"]) == 0
    assert "model.name=mlp" in capsys.readouterr().out
    assert cli(["explain", "--app", str(overlay), str(ctx.cache), "model=cnn_big"]) == 1  # the YAML's 64 channels
    assert "model.channels: wanted 64, cached 16" in capsys.readouterr().out
    assert cli(["explain", "--app", str(overlay), str(ctx.cache), "model=cnnn"]) == 2
    assert "Did you mean 'cnn'" in capsys.readouterr().err
