"""The exca_local launcher, run as real Hydra apps in subprocesses (issue 3, "Done means").

Apps: tests/apps/trainer/ (pydantic Trainer; app.py is the ``def main(trainer: Trainer)`` form,
method_app.py the ``Trainer.run`` form) and tests/apps/plain/ (plain ``@hydra.main``).  Each task
appends a line to $EXCA_TEST_LOG when it runs: that file is how the tests see what ran.
Everything is written under tmp_path (sweep dir, cache, log); nothing in the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pytest
import yaml

from exca_hydra.cache.uid import uid_config, uid_string

APPS = Path(__file__).resolve().parent / "apps"
TRAINER = APPS / "trainer"
PLAIN = APPS / "plain"
if str(TRAINER) not in sys.path:  # same module name ("launcher_models") as in the app processes
    sys.path.insert(0, str(TRAINER))

from launcher_models import Trainer  # noqa: E402


class Run(tp.NamedTuple):
    code: int
    out: str
    err: str


class Ctx:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache = tmp / "cache"
        self.log = tmp / "ran.txt"
        self.sweeps = 0

    def run(
        self, app: Path, *args: str, multirun: bool = True, full_error: bool = False, flags: tp.Sequence[str] = ()
    ) -> Run:
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env.update(EXCA_HYDRA_CACHE=str(self.cache), EXCA_TEST_LOG=str(self.log))
        if full_error:
            env["HYDRA_FULL_ERROR"] = "1"
        self.sweeps += 1
        self.sweep_dir = self.tmp / f"sweep{self.sweeps}"
        where = [f"hydra.sweep.dir={self.sweep_dir}"] if multirun else [f"hydra.run.dir={self.sweep_dir}"]
        cmd = [sys.executable, str(app), *flags, *(["-m"] if multirun else []), *args, *where]
        proc = subprocess.run(cmd, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=60)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def lines(self) -> list[str]:
        return self.log.read_text("utf8").splitlines() if self.log.exists() else []

    def job_dirs(self) -> list[str]:
        """The folders of the jobs that ran in the last sweep (a cached job's folder holds a
        pointer to its cache entry, .hydra/cache_entry.txt, and is listed by cached_dirs)."""
        return [name for name in self.all_dirs() if name not in self.cached_dirs()]

    def all_dirs(self) -> list[str]:
        if not self.sweep_dir.exists():
            return []
        return sorted(p.name for p in self.sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def cached_dirs(self) -> list[str]:
        return [name for name in self.all_dirs() if (self.sweep_dir / name / ".hydra" / "cache_entry.txt").exists()]

    def cache_entries(self) -> list[Path]:
        return sorted(self.cache.glob("*/*")) if self.cache.exists() else []

    def assert_nothing_ran(self) -> None:
        assert self.lines() == []
        assert self.job_dirs() == []
        assert self.cache_entries() == []


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def entry(cache: Path, method_dir: str, **fields: tp.Any) -> Path:
    """The cache entry of Trainer(**fields) under ``method_dir`` (uid rules of the core library)."""
    return cache / method_dir / uid_string(uid_config(Trainer(**fields)))


# ----- 1, 2: validate every job first, submit nothing when one fails -----
def test_one_invalid_job_launches_nothing(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "model=conv,transformer", "++model.kernel=7")
    assert r.code != 0
    assert "1 of 2 job(s)" in r.err
    assert re.search(r"#1 : model=transformer \+\+model\.kernel=7", r.err), r.err
    assert "#0" not in r.err  # the valid job is not reported
    assert re.search(r"model\.(transformer\.)?kernel: Extra inputs are not permitted", r.err), r.err
    assert "Traceback" not in r.err
    ctx.assert_nothing_ran()  # not even the valid conv job


def test_every_invalid_job_is_listed(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "lr=abc,0.1,xyz")
    assert r.code != 0
    assert "2 of 3 job(s)" in r.err
    for num, value in ((0, "abc"), (2, "xyz")):
        assert re.search(rf"#{num} : lr={value}\n\s+lr: Input should be a valid number.*'{value}'", r.err), r.err
    assert "#1" not in r.err
    ctx.assert_nothing_ran()


def test_missing_value_and_broken_interpolation_are_reported(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "model=conv,missing,badref")
    assert r.code != 0
    assert "2 of 3 job(s)" in r.err
    assert re.search(r"#1 : model=missing\n\s+model\.layers: MissingMandatoryValue", r.err), r.err
    assert re.search(r"#2 : model=badref\n\s+model\.embeddings: Interpolation\w*Error.*'nope'", r.err), r.err
    ctx.assert_nothing_ran()


# ----- 3, 4: discriminated unions through config groups, results in order -----
def test_union_through_config_group_and_job_order(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "model=conv,transformer", "lr=0.1,0.2", "hydra.launcher.array_parallelism=4")
    assert r.code == 0, r.err
    expected = ["0 ConvCfg lr=0.1", "1 ConvCfg lr=0.2", "2 TransformerCfg lr=0.1", "3 TransformerCfg lr=0.2"]
    assert sorted(ctx.lines()) == expected  # each job once, with the model class of its group
    assert ctx.job_dirs() == ["0", "1", "2", "3"]
    order = [[f"model={m}", f"lr={lr}"] for m in ("conv", "transformer") for lr in (0.1, 0.2)]
    for num, overrides in enumerate(order):
        job = ctx.sweep_dir / str(num)
        assert yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) == overrides
        cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert cfg["model"]["name"] == overrides[0].split("=")[1]
    # cached under the uid of each validated model, in the task function's folder
    for model, lr in (("conv", 0.1), ("transformer", 0.2)):
        e = entry(ctx.cache, "app.main,0", model={"name": model}, lr=lr)
        assert (e / "result.pkl").exists(), sorted(ctx.cache.glob("*/*"))


def test_returns_in_input_order(hydra_sweep_runner: tp.Any, tmp_path: Path) -> None:
    """In process: launch() returns one JobReturn per job, in input order, although the jobs
    run in parallel and finish in reverse order."""

    def task(cfg: tp.Any) -> tuple[int, int]:
        from hydra.core.hydra_config import HydraConfig

        time.sleep(0.15 * int(cfg.x))
        return int(cfg.x), int(HydraConfig.get().job.num)

    with hydra_sweep_runner(
        calling_file=str(PLAIN / "app.py"),
        calling_module=None,
        task_function=task,
        config_path="conf",
        config_name="config",
        overrides=["x=3,2,1,0", "hydra.launcher.array_parallelism=4"],
        temp_dir=tmp_path / "sweep",
    ) as sweep:
        assert sweep.returns is not None and len(sweep.returns) == 1
        returns = sweep.returns[0]
        assert [r.overrides for r in returns] == [["x=3"], ["x=2"], ["x=1"], ["x=0"]]
        assert [r.return_value for r in returns] == [(3, 0), (2, 1), (1, 2), (0, 3)]
        assert [r.hydra_cfg.hydra.job.num for r in returns] == [0, 1, 2, 3]
        assert all(r.working_dir.endswith(f"sweep/{i}") for i, r in enumerate(returns))


# ----- 5: a failing or killed job keeps the other jobs' results -----
def test_failed_and_killed_jobs_keep_the_others(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "lr=0.1,0.5,0.25,0.2", "hydra.launcher.array_parallelism=4")
    assert r.code != 0
    assert "lr=0.5 diverges" in r.err  # Hydra re-raises the first failure after the batch
    # ...with the task's own frames from the job process, as a note under the exception
    note = r.err[r.err.index("Job #1 (lr=0.5); its traceback:") :]
    assert "launcher_models.py" in note and 'raise ValueError("lr=0.5 diverges")' in note, r.err
    assert sorted(ctx.lines()) == ["0 ConvCfg lr=0.1", "3 ConvCfg lr=0.2"]
    out = r.out + r.err
    for num, status in ((0, "COMPLETED"), (1, "FAILED"), (2, "FAILED"), (3, "COMPLETED")):
        assert re.search(rf"^\s+{num}\s+{status}\s", out, re.M), out
    conv = {"name": "conv"}
    for lr in (0.1, 0.2):
        assert (entry(ctx.cache, "app.main,0", model=conv, lr=lr) / "result.pkl").exists()
    failed = entry(ctx.cache, "app.main,0", model=conv, lr=0.5)
    assert (failed / "error.pkl").exists() and not (failed / "result.pkl").exists()
    assert "lr=0.5 diverges" in (failed / "error.txt").read_text()
    killed = entry(ctx.cache, "app.main,0", model=conv, lr=0.25)
    assert not (killed / "result.pkl").exists()
    # the completed jobs are not recomputed by a second sweep
    r = ctx.run(TRAINER / "app.py", "lr=0.1,0.2")
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["0 ConvCfg lr=0.1", "3 ConvCfg lr=0.2"]


# ----- 6: launcher keys, --cfg hydra, --info plugins -----
def test_unknown_launcher_key_is_rejected(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "model=conv,transformer", "+hydra.launcher.foo=1")
    assert r.code != 0
    assert "hydra.launcher.foo" in r.err
    assert "Traceback" not in r.err
    ctx.assert_nothing_ran()


def test_cfg_hydra_and_info_plugins(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "hydra/launcher=exca_slurm", flags=["--cfg", "hydra"], multirun=False)
    assert r.code == 0, r.err
    launcher = yaml.safe_load(r.out)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.exca_hydra_plugin.launchers.ExcaSlurmLauncher"
    for key in ("array_parallelism", "timeout_min", "partition", "submitit_folder", "folder", "max_array_size"):
        assert key in launcher, key
    r = ctx.run(TRAINER / "app.py", flags=["--info", "plugins"], multirun=False)
    assert r.code == 0, r.err
    assert "ExcaLocalLauncher" in r.out and "ExcaSlurmLauncher" in r.out
    ctx.assert_nothing_ran()


# ----- 7: single run with an invalid value -----
def test_single_run_invalid_value(ctx: Ctx) -> None:
    r = ctx.run(TRAINER / "app.py", "lr=abc", multirun=False)
    assert r.code == 1
    assert re.search(r"^\s+lr: Input should be a valid number", r.err, re.M), r.err
    assert "Traceback" not in r.err
    assert ctx.lines() == []
    r = ctx.run(TRAINER / "app.py", "lr=abc", multirun=False, full_error=True)
    assert r.code == 1
    assert "Traceback" in r.err and "lr: Input should be a valid number" in r.err


# ----- 8: plain @hydra.main apps -----
def test_plain_hydra_app_is_cached_by_resolved_config(ctx: Ctx) -> None:
    args = ("x=1,2", f"hydra.launcher.folder={ctx.cache}")
    r = ctx.run(PLAIN / "app.py", *args)
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["plain x=1", "plain x=2"]
    assert ctx.job_dirs() == ["0", "1"]
    for x in (1, 2):
        folder = ctx.cache / "app.main,0" / uid_string(uid_config({"x": x, "name": "plain"}))
        assert (folder / "result.pkl").exists(), ctx.cache_entries()
    r = ctx.run(PLAIN / "app.py", *args)  # same folder: read from the cache, not recomputed
    assert r.code == 0, r.err
    assert ctx.all_dirs() == ["0", "1"] == ctx.cached_dirs()  # the jobs still went through run_job (read back: issue 22)
    assert sorted(ctx.lines()) == ["plain x=1", "plain x=2"]
    r = ctx.run(PLAIN / "app.py", "x=3", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["plain x=1", "plain x=2", "plain x=3"]


# ----- 9: the CLI and the Python API share cache entries (method-task form) -----
def test_cli_and_python_share_the_cache(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    r = ctx.run(TRAINER / "method_app.py", "model=conv,transformer")
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["0 ConvCfg lr=0.1", "1 TransformerCfg lr=0.1"]
    monkeypatch.setenv("EXCA_TEST_LOG", str(ctx.log))
    trainer = Trainer(model={"name": "transformer"}, infra={"folder": ctx.cache})
    cli_entry = entry(ctx.cache, "launcher_models.Trainer.run,0", model={"name": "transformer"})
    assert trainer.infra.uid_folder() == cli_entry and (cli_entry / "result.pkl").exists()
    assert trainer.run() == "1 TransformerCfg lr=0.1"  # the CLI's result, not recomputed here
    assert len(ctx.lines()) == 2
    new = Trainer(model={"name": "conv"}, lr=0.3, infra={"folder": ctx.cache})
    assert new.run().endswith(" ConvCfg lr=0.3")  # computed in Python...
    assert len(ctx.lines()) == 3
    r = ctx.run(TRAINER / "method_app.py", "lr=0.3,0.1")  # ...and reused by the CLI
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 3


def test_two_programs_with_the_same_name_never_share_an_entry(ctx: Ctx) -> None:
    """Two projects' app.py:main with the same overrides and one cache folder: the second never
    gets the first's results; it is told why, before anything runs."""
    import shutil

    for project in ("a", "b"):
        shutil.copytree(PLAIN, ctx.tmp / project)
    args = ("x=1,2", f"hydra.launcher.folder={ctx.cache}")
    first = ctx.run(ctx.tmp / "a" / "app.py", *args)
    assert first.code == 0, first.err
    assert sorted(ctx.lines()) == ["plain x=1", "plain x=2"]
    entries = ctx.cache_entries()
    assert {(e / "program.txt").read_text() for e in entries} == {str((ctx.tmp / "a" / "app.py").resolve())}
    second = ctx.run(ctx.tmp / "b" / "app.py", *args)
    assert second.code == 1
    assert "computed by" in second.err and str(ctx.tmp / "a" / "app.py") in second.err and "Traceback" not in second.err
    assert sorted(ctx.lines()) == ["plain x=1", "plain x=2"]  # nothing ran for b, nothing served
    again = ctx.run(ctx.tmp / "a" / "app.py", *args)  # a's own entries are still hits
    assert again.code == 0 and sorted(ctx.lines()) == ["plain x=1", "plain x=2"]


def test_a_hydra_zen_app_runs_and_caches_under_exca_local(ctx: Ctx) -> None:
    """Issue 22: zen(task).hydra_main apps under exca_local: without a cache folder (returns of
    hydra-zen's generated dataclasses cross the process boundary) and with one (named after the
    task zen wraps; a second sweep computes nothing)."""
    app = APPS / "zen" / "zen_app.py"
    r = ctx.run(app, "lr=0.1,0.2", "hydra/launcher=exca_local")
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 2 and "results: not cached" in r.out + r.err
    r = ctx.run(app, "lr=0.1,0.2", "hydra/launcher=exca_local", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 0, r.err
    assert [p.name for p in ctx.cache.iterdir()] == ["zen_models.train,0"] and len(ctx.lines()) == 4
    r = ctx.run(app, "lr=0.1,0.2", "hydra/launcher=exca_local", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 0 and len(ctx.lines()) == 4, r.err  # both cached
