"""A code snapshot (``workdir.copied``) holds the code only: not the cache, not Hydra's outputs
(earlier sweeps' snapshots included), not what git ignores; symlinked folders stay links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exca_hydra.workdir import WorkDir

ROOT = Path(__file__).resolve().parent.parent


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for name, text in {
        "code.py": "X = 1\n", "pkg/mod.py": "Y = 2\n", ".gitignore": "build/\n*.log\n",
        "build/lib/big.bin": "x", "run.log": "log", "pkg/notes.log": "log",
        "cache/m,0/uid-1/result.pkl": "r", "cache/m,0/uid-1/claim.json": "{}",
        "multirun/2026-01-01/00-00-00/multirun.yaml": "", "outputs/2026-01-01/.hydra/config.yaml": "",
        # a sweep dir inside the project, under a name of its own: an earlier sweep and its snapshot
        "sweeps/a/multirun.yaml": "", "sweeps/a/.exca/code/old/code.py": "X = 0\n", "sweeps/a/0/.hydra/x": "",
    }.items():  # fmt: skip
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "huge.bin").write_text("h" * 1000)
    (project / "data").symlink_to(data)  # a symlinked data folder
    (project / "rel").symlink_to("../data")  # relative, pointing outside the project
    (project / "pkg" / "alias.py").symlink_to("mod.py")  # relative, inside
    return project


def test_snapshot_leaves_out_cache_outputs_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    target = WorkDir(copied=[Path(".")]).copy(tmp_path / "snap", skip=[project / "cache"])
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert files == [".gitignore", "build", "build/lib", "build/lib/big.bin", "code.py", "data", "pkg",
                     "pkg/alias.py", "pkg/mod.py", "pkg/notes.log", "rel", "run.log", "sweeps"], files  # fmt: skip
    # symlinks are links: the data is not copied, and every link still reaches its target
    assert (target / "data").is_symlink() and os.readlink(target / "data") == str(tmp_path / "data")
    assert os.readlink(target / "rel") == str(tmp_path / "data")
    assert os.readlink(target / "pkg" / "alias.py") == "mod.py" and (target / "pkg" / "alias.py").read_text() == "Y = 2\n"
    err = capsys.readouterr().err
    for left in ("cache (cache or sweep folder)", "multirun (Hydra outputs)", "outputs (Hydra outputs)",
                 "sweeps/a (Hydra outputs)"):  # fmt: skip
        assert left in err, err


def test_snapshot_in_a_git_repo_leaves_out_what_git_ignores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    project = _project(tmp_path)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "code.py", "pkg/mod.py"], check=True)
    monkeypatch.chdir(project)
    target = WorkDir(copied=[Path(".")]).copy(tmp_path / "snap", skip=[project / "cache"])
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert files == [".gitignore", "code.py", "data", "pkg", "pkg/alias.py", "pkg/mod.py", "rel", "sweeps"], files
    err = capsys.readouterr().err
    assert "build (.gitignore)" in err and "run.log (.gitignore)" in err and "pkg/notes.log (.gitignore)" in err, err


def test_example_app_snapshot_holds_no_cache_nor_earlier_sweeps(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "example_app").mkdir(parents=True)
    for name in ("app.py", "models.py", "__init__.py"):
        (project / "example_app" / name).write_text((ROOT / "example_app" / name).read_text())
    (project / "example_app" / "conf").symlink_to(ROOT / "example_app" / "conf", target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EXCA_HYDRA_CACHE", None)  # the app's default: ./exca_cache
    for sweep, model in (("sweeps/one", "conv"), ("sweeps/two", "transformer")):  # two: not cached
        command = [sys.executable, "example_app/app.py", "-m", f"model={model}",
                   "hydra.launcher.workdir.copied=[.]", f"hydra.sweep.dir={project / sweep}"]  # fmt: skip
        proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project / "exca_cache").is_dir()
    (snapshot,) = (project / "sweeps" / "two" / ".exca" / "code").iterdir()
    names = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if "__pycache__" not in p.parts)
    assert names == ["example_app", "example_app/__init__.py", "example_app/app.py", "example_app/conf",
                     "example_app/models.py", "sweeps"], names  # fmt: skip
    assert (snapshot / "example_app" / "conf").is_symlink()
    assert "exca_cache (cache or sweep folder)" in proc.stderr and "sweeps/one (Hydra outputs)" in proc.stderr, proc.stderr


def test_a_python_api_job_imports_the_scripts_modules_from_the_snapshot(tmp_path: Path) -> None:
    """redteam-users F19: a job submitted from a script in the project folder imported the
    project's module from the original folder (it came first on the job's path), so an edit made
    while the job was queued is what ran and was cached."""
    import subprocess
    import sys

    project = tmp_path / "project"
    project.mkdir()
    (project / "mymod.py").write_text(
        "import pydantic\nfrom exca_hydra import TaskInfra\nclass T(pydantic.BaseModel):\n    x: int = 1\n"
        "    infra: TaskInfra = TaskInfra()\n    @infra.apply\n    def run(self) -> str:\n        return __file__\n"
    )
    (project / "submit.py").write_text(
        "import sys\nfrom mymod import T\n"
        "print(T(infra={'folder': sys.argv[1], 'cluster': 'local', 'workdir': {'copied': ['.']}}).run())\n"
    )
    out = subprocess.run([sys.executable, "submit.py", str(tmp_path / "cache")], cwd=project, capture_output=True, text=True, timeout=120)
    ran = Path(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None
    assert ran is not None and ran.name == "mymod.py", out.stderr[-2000:]
    assert (tmp_path / "cache" / "code") in ran.parents and project not in ran.parents
