"""Caching is never silently off (issue 17): without a cache folder the sweep says so once, up
front; the exca sweeper's folder is honoured whatever the launcher; a plain ``@hydra.main`` app
is told where its results are cached, or that they are not; the summary names only folders
that exist.

What ran is counted through $EXCA_TEST_LOG, one line per computed job (see ``Ctx``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_launcher import PLAIN, TRAINER, Ctx

APP = TRAINER / "app.py"
METHOD_APP = TRAINER / "method_app.py"
THREE = ("hydra.sweeper.folder", "hydra.launcher.folder", "the model's infra.folder")


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def _results_line(text: str) -> str:
    return [line for line in text.splitlines() if line.startswith("results: ")][-1]


def test_no_cache_folder_is_said_once_before_anything_runs(ctx: Ctx) -> None:
    sweep = ("hydra/sweeper=exca", "model=conv", "lr=0.1,0.2", "infra.folder=null")
    for run in (1, 2):
        r = ctx.run(APP, *sweep)
        out = r.out + r.err
        assert r.code == 0, r.err
        assert out.count("no cache folder") == 1, out
        warning = next(line for line in out.splitlines() if "no cache folder" in line)
        assert "nothing will be cached" in warning and all(name in warning for name in THREE), warning
        assert out.index("no cache folder") < out.index("launching 2 validated job")  # before launch
        assert "0 cached, 0 running, 2 to run" in out
        assert _results_line(r.out) == "results: not cached"
        assert len(ctx.lines()) == 2 * run  # every run computes everything
    assert not ctx.cache.exists()


def test_exca_launcher_alone_says_it_has_no_cache_folder(ctx: Ctx) -> None:
    r = ctx.run(APP, "model=conv", "lr=0.1,0.2", "infra.folder=null")  # Hydra's basic sweeper
    out = r.out + r.err
    assert r.code == 0, r.err
    assert out.count("Exca local launcher: no cache folder") == 1, out
    assert "hydra.launcher.folder or the model's infra.folder" in out
    assert _results_line(r.out) == "results: not cached"


def test_exca_launcher_alone_says_cached_for_what_it_read_back(ctx: Ctx) -> None:
    assert ctx.run(APP, "model=conv", "lr=0.1,0.2").code == 0  # Hydra's basic sweeper
    again = ctx.run(APP, "model=conv", "lr=0.1,0.2,0.3")
    assert again.code == 0 and len(ctx.lines()) == 3, again.err
    assert "Sweep summary: 3 job(s): 1 completed, 2 cached" in again.out, again.out
    rows = {int(line.split()[0]): line.split()[1:3] for line in again.out.splitlines() if re.match(r"\s+\d\s", line)}
    assert rows[0] == rows[1] == ["COMPLETED", "cached"] and re.fullmatch(r"\d+\.\ds", rows[2][1])


@pytest.mark.parametrize("app, method_dir", [(APP, "app.main,0"), (METHOD_APP, "launcher_models.Trainer.run,0")])
def test_basic_launcher_caches_under_the_sweeper_folder(ctx: Ctx, app: Path, method_dir: str) -> None:
    folder = ctx.tmp / "sweeper_cache"
    sweep = ("hydra/sweeper=exca", "hydra/launcher=basic", f"hydra.sweeper.folder={folder}", "model=conv", "lr=0.1,0.2")
    first = ctx.run(app, *sweep, "infra.folder=null")
    assert first.code == 0, first.err
    assert sorted(line.split()[-1] for line in ctx.lines()) == ["lr=0.1", "lr=0.2"]
    assert _results_line(first.out) == f"results: {folder / method_dir}/<uid>"
    entries = sorted((folder / method_dir).iterdir())
    assert len(entries) == 2 and all((entry / "result.pkl").exists() for entry in entries)
    again = ctx.run(app, *sweep, "infra.folder=null")
    assert again.code == 0, again.err
    assert len(ctx.lines()) == 2  # the second run computed nothing
    assert "2 cached, 0 running, 0 to run" in again.out + again.err
    # the sweeper's folder comes before the model's infra.folder, in single runs too
    single = ctx.run(app, "hydra/sweeper=exca", f"hydra.sweeper.folder={folder}", "model=conv", "lr=0.3", multirun=False)
    assert single.code == 0, single.err
    assert len(ctx.lines()) == 3 and len(list((folder / method_dir).iterdir())) == 3 and not ctx.cache.exists()
    third = ctx.run(app, *sweep[:-1], "lr=0.1,0.2,0.3")
    assert third.code == 0 and len(ctx.lines()) == 3, third.err


def test_a_relative_sweeper_folder_is_taken_from_where_the_app_started(ctx: Ctx) -> None:
    # the job changes directory (hydra.job.chdir): the folder stays relative to the start
    sweep = ("hydra/sweeper=exca", "hydra/launcher=basic", "hydra.sweeper.folder=rel", "hydra.job.chdir=true", "lr=0.1,0.2")
    assert ctx.run(APP, *sweep, "infra.folder=null").code == 0
    assert len(list((ctx.tmp / "rel" / "app.main,0").iterdir())) == 2
    again = ctx.run(APP, *sweep, "infra.folder=null")
    assert again.code == 0 and len(ctx.lines()) == 2, again.err


def test_plain_app_is_told_where_its_results_are_or_that_they_are_not(ctx: Ctx) -> None:
    folder = ctx.tmp / "plain_cache"
    # a foreign launcher calls the DictConfig task itself: nothing can be cached, and it says so
    foreign = ("hydra/sweeper=exca", "hydra/launcher=basic", f"hydra.sweeper.folder={folder}", "x=1,2")
    for run in (1, 2):
        r = ctx.run(PLAIN / "app.py", *foreign)
        out = r.out + r.err
        assert r.code == 0, r.err
        assert out.count("nothing will be cached") == 1 and "BasicLauncher runs a plain @hydra.main task" in out, out
        assert _results_line(r.out) == "results: not cached"
        assert len(ctx.lines()) == 2 * run
    assert not folder.exists()
    # no folder at all: the warning names the two folders a DictConfig app can have
    r = ctx.run(PLAIN / "app.py", "hydra/sweeper=exca", "x=1,2")
    warning = next(line for line in (r.out + r.err).splitlines() if "no cache folder" in line)
    assert "hydra.sweeper.folder or hydra.launcher.folder" in warning and "infra" not in warning
    # the exca launcher caches it under the sweeper's folder, and the summary says where
    exca = ("hydra/sweeper=exca", f"hydra.sweeper.folder={folder}", "x=1,2")
    r = ctx.run(PLAIN / "app.py", *exca)
    assert r.code == 0 and "no cache folder" not in r.out + r.err, r.err
    assert _results_line(r.out) == f"results: {folder / 'app.main,0'}/<uid>"
    done = len(ctx.lines())
    r = ctx.run(PLAIN / "app.py", *exca)
    assert r.code == 0 and len(ctx.lines()) == done and "2 cached" in r.out + r.err


def test_summary_names_only_folders_that_exist(tmp_path: Path) -> None:
    from hydra.core.utils import JobReturn, JobStatus

    from exca_hydra.bridge.launch.jobs import HydraJob
    from exca_hydra.bridge.launch.report import summary
    from exca_hydra.cache.store import Entry

    job = HydraJob(0, ["x=1"], None, None, entry=Entry(tmp_path / "root" / "app.main,0" / "x=1-0123456789abcdef"))
    job.result = JobReturn(overrides=["x=1"], status=JobStatus.COMPLETED, _return_value=1)
    assert "results:" not in summary([job])  # never written: not named
    job.entry.folder.mkdir(parents=True)  # type: ignore[union-attr]
    assert summary([job]).endswith(f"results: {tmp_path / 'root' / 'app.main,0'}/<uid>")
    job.entry = None
    assert summary([job]).endswith("results: not cached")


SCRIPT = '''
import sys, pydantic, exca_hydra

class Exp(pydantic.BaseModel):
    x: int = 1
    infra: exca_hydra.TaskInfra = exca_hydra.TaskInfra()

    @infra.apply
    def train(self) -> int:
        print("computed", flush=True)
        return self.x * 2

@exca_hydra.main(version_base="1.3")
def main(exp: Exp) -> int:
    return exp.train()

if __name__ == "__main__":
    if sys.argv[1:] == ["api"]:
        print(Exp(infra={"folder": "cache"}).train(), flush=True)
    else:
        main()
'''


@pytest.mark.parametrize("tool", [[], ["-m", "cProfile", "-o", "profile.out"], ["-m", "trace", "--count", "--missing", "-C", "cov"]])
def test_a_script_run_by_a_tool_is_cached_under_its_own_name(tmp_path: Path, tool: list[str]) -> None:
    """`python -m cProfile app.py` (or trace): the tool is __main__ then; a model defined in the
    script was cached under "cProfile.Exp.train,0/" and computed again (found by the bench)."""
    (tmp_path / "exp_app.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "EXCA_HYDRA_CACHE"}
    for args in (["api"], ["-m", "x=1,2", "infra.folder=cache", "hydra.sweep.dir=sweep"]):
        proc = subprocess.run([sys.executable, *tool, "exp_app.py", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["exp_app.Exp.train,0"]
    assert len(list((tmp_path / "cache" / "exp_app.Exp.train,0").iterdir())) == 2  # x=1 shared, x=2


def test_a_cache_folder_that_is_a_file_is_one_message_naming_the_field(ctx: Ctx, tmp_path: Path) -> None:
    """Found by the red team (F13): a 37-line NotADirectoryError traceback from the sweep's plan."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for key in ("infra.folder", "hydra.launcher.folder", "hydra.sweeper.folder"):
        r = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.2", f"{key}={afile}")
        out = r.out + r.err
        assert r.code == 1 and f"{afile} is a file, not a folder" in out and key in out and "Traceback" not in out, out
    assert afile.read_text() == "x"
    from exca_hydra import MapInfra, TaskInfra

    for infra in (TaskInfra, MapInfra):
        with pytest.raises(ValueError, match="is a file, not a folder"):
            infra(folder=afile)


TWO_PROGRAMS = '''
import sys, typing as tp, pydantic, exca_hydra
from exca_hydra import MapInfra, TaskInfra

class Task(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return "WHO"

class Feat(pydantic.BaseModel):
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def embed(self, items: tp.Iterable[str]) -> tp.Iterator[str]:
        for item in items:
            yield "WHO:" + item

@exca_hydra.main(version_base="1.3")
def main(task: Task) -> str:
    return task.run()

if __name__ == "__main__":
    if sys.argv[1] == "api":
        for call in (lambda: Task(infra={"folder": sys.argv[2]}).run(), lambda: list(Feat(infra={"folder": sys.argv[2]}).embed(["x"]))):
            try:
                print("got", call(), flush=True)
            except Exception as e:
                print("refused", type(e).__name__, e, flush=True)
    else:
        main()
'''


def test_two_programs_with_the_same_script_and_class_names_never_share_a_result(tmp_path: Path) -> None:
    """Found by the red team (F19): p1/app.py and p2/app.py, each with its own `class Task` in the
    script, shared app.Task.run,0/: the second was served the first's results (TaskInfra, MapInfra,
    a Hydra sweep). A script's class records its program, as a plain task does."""
    env = {k: v for k, v in os.environ.items() if k != "EXCA_HYDRA_CACHE"}
    cache = tmp_path / "cache"
    outs = {}
    for name in ("p1", "p2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(TWO_PROGRAMS.replace("WHO", name))
        api = subprocess.run([sys.executable, "app.py", "api", str(cache)], cwd=tmp_path / name, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        sweep = subprocess.run([sys.executable, "app.py", "-m", "x=1,2", f"infra.folder={cache}", f"hydra.sweep.dir={tmp_path / name / 's'}"],
                               cwd=tmp_path / name, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        outs[name] = (api.stdout + api.stderr, sweep.returncode, sweep.stdout + sweep.stderr)
    assert "got p1" in outs["p1"][0] and "got ['p1:x']" in outs["p1"][0] and outs["p1"][1] == 0, outs["p1"]
    api, code, sweep = outs["p2"]
    assert api.count("refused OtherProgram") == 2 and "p1" not in api.replace(str(tmp_path / "p1"), ""), api
    assert code == 1 and "was computed by" in sweep and "give each program its own cache folder" in sweep, sweep
