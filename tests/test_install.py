"""Installing exca-hydra the usual ways, each in a fresh venv: Hydra must see the plugins.

Hydra 1.3 finds plugins by walking ``hydra_plugins.__path__`` with pkgutil: an install that makes
``hydra_plugins.exca_hydra_plugin`` importable through an import hook only (setuptools' editable
finder) leaves ``hydra/sweeper=exca`` unknown ("Could not find 'hydra/sweeper/exca'").
Needs pip to reach an index (or a warm pip cache) for the dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("ExcaSweeper", "ExcaLocalLauncher", "ExcaSlurmLauncher")
HINT = "are not visible to Hydra"

# a small app outside the checkout: with a wheel install, only what the wheel put in site-packages
# what Hydra says when it cannot see the plugins: the sweeper, or the model's generated config
HYDRA_MISSES = ("Could not find 'hydra/sweeper/exca'", "Cannot find primary config 'config'")
TINY_APP = textwrap.dedent(
    """
    import pydantic
    import exca_hydra

    class Cfg(pydantic.BaseModel):
        x: int = 0

    @exca_hydra.main(config_path=None, config_name=None)
    def main(cfg: Cfg) -> int:
        print(f"x={cfg.x}")
        return cfg.x

    if __name__ == "__main__":
        main()
    """
)


class Venv:
    def __init__(self, folder: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True)
        self.folder = folder
        self.python = str(folder / ("Scripts" if os.name == "nt" else "bin") / "python")
        # not the test session's environment: conftest.py puts the checkout on PYTHONPATH
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        self.env.pop("HYDRA_FULL_ERROR", None)
        self.env.pop("EXCA_HYDRA_CACHE", None)

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, *args], cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=300
        )

    def pip_install(self, *args: str) -> None:
        proc = self.run("-m", "pip", "install", "-q", *args, cwd=self.folder)
        assert proc.returncode == 0, f"pip install {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def editable(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("editable") / "venv")
    venv.pip_install("-e", str(ROOT))  # plain, no --config-settings: what most people type
    return venv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    # pip builds in the source tree (build/, *.egg-info): build from a copy, so that the checkout
    # stays clean and a stale build/lib (e.g. an old example_app) cannot end up in the wheel
    source = tmp_path_factory.mktemp("source") / "exca-hydra"
    ignore = shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "outputs", "multirun",
        "exca_cache", ".venv*",
    )
    shutil.copytree(ROOT, source, ignore=ignore)
    venv = Venv(tmp_path_factory.mktemp("wheel") / "venv")
    venv.pip_install(str(source))
    return venv


def test_editable_install_hydra_sees_plugins(editable: Venv, tmp_path: Path) -> None:
    proc = editable.run(str(ROOT / "example_app" / "app.py"), "--info", "plugins", cwd=tmp_path)
    assert proc.returncode == 0, _output(proc)
    for plugin in PLUGINS:
        assert plugin in proc.stdout, f"{plugin} not listed by --info plugins:\n{proc.stdout}"


def test_editable_install_runs_readme_sweep(editable: Venv, tmp_path: Path) -> None:
    # the README's first command, run outside the checkout (its outputs land in tmp_path)
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("pip install"))
    install, _, app = command.partition(" && ")
    assert install == "pip install -e .", command
    assert app.startswith("python example_app/app.py -m model=conv,transformer"), command
    args = app.split()[2:]
    proc = editable.run(str(ROOT / "example_app" / "app.py"), *args, cwd=tmp_path)
    output = _output(proc)
    assert proc.returncode == 0, output
    jobs = 2 * 2 if "model.layers=4,8" in args else 2
    assert f"Sweep summary: {jobs} job(s): {jobs} completed" in output, output
    assert HINT not in output
    # a failure while the plugins are visible: Hydra's error, no install hint
    proc = editable.run(str(ROOT / "example_app" / "app.py"), "model=nonexistent", cwd=tmp_path)
    assert proc.returncode == 1 and "nonexistent" in proc.stderr, _output(proc)
    assert HINT not in _output(proc)


def test_wheel_install_hydra_sees_plugins_without_example_app(wheel: Venv, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(TINY_APP)
    proc = wheel.run("app.py", "--info", "plugins", cwd=tmp_path)
    assert proc.returncode == 0, _output(proc)
    for plugin in PLUGINS:
        assert plugin in proc.stdout, f"{plugin} not listed by --info plugins:\n{proc.stdout}"
    proc = wheel.run("app.py", "-m", "hydra/sweeper=exca", "x=1,2", cwd=tmp_path)  # x: from the model
    assert proc.returncode == 0 and "x=1" in proc.stdout and "x=2" in proc.stdout, _output(proc)
    # the example app is an example: not a top-level package of the wheel
    check = (
        "import importlib.metadata as m, importlib.util as u;"
        "files = [str(f) for f in m.files('exca-hydra')];"
        "print(u.find_spec('example_app'), [f for f in files if f.startswith('example_app')],"
        " m.distribution('exca-hydra').read_text('top_level.txt').split())"
    )
    proc = wheel.run("-c", check, cwd=tmp_path)
    assert proc.returncode == 0, _output(proc)
    assert proc.stdout.split() == ["None", "[]", "['exca_hydra',", "'hydra_plugins']"], proc.stdout


def test_wheel_install_runs_readme_app_as_a_script(wheel: Venv, tmp_path: Path) -> None:
    # `pip install .` does not install example_app: the README's command still runs the script
    args = ("-m", "model=conv,transformer", f"hydra.sweep.dir={tmp_path / 'multirun'}")
    env = {"EXCA_HYDRA_CACHE": str(tmp_path / "cache")}
    proc = wheel.run(str(ROOT / "example_app" / "app.py"), *args, cwd=tmp_path, env=env)
    output = _output(proc)
    assert proc.returncode == 0 and "No module named 'example_app'" not in output, output
    assert "Sweep summary: 2 job(s): 2 completed" in output, output


def test_hint_when_hydra_cannot_see_plugins(wheel: Venv, tmp_path: Path) -> None:
    # a regular package named hydra_plugins (with __init__.py) first on sys.path hides the
    # namespace, as another project shipping hydra_plugins/__init__.py would
    init = tmp_path / "shadow" / "hydra_plugins" / "__init__.py"
    init.parent.mkdir(parents=True)
    init.write_text("")
    (tmp_path / "app.py").write_text(TINY_APP)
    env = {"PYTHONPATH": str(tmp_path / "shadow")}
    proc = wheel.run("app.py", "-m", "hydra/sweeper=exca", "x=1,2", cwd=tmp_path, env=env)
    assert proc.returncode == 1, _output(proc)
    assert any(m in proc.stderr for m in HYDRA_MISSES), proc.stderr
    assert HINT in proc.stderr and f"{init} makes hydra_plugins a regular package" in proc.stderr, proc.stderr
    # the model's generated config is served through the plugins too: a single run says the same
    proc = wheel.run("app.py", "x=3", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and HINT in proc.stderr, _output(proc)
    proc = wheel.run("app.py", "x=3", cwd=tmp_path)  # plugins visible: no failure, no hint
    assert proc.returncode == 0 and "x=3" in proc.stdout and HINT not in proc.stderr, _output(proc)


def test_editable_finder_hides_plugins_with_hint(tmp_path: Path) -> None:
    """Without pyproject's package-dir, setuptools' editable install goes through its import-hook
    finder: the plugins import, but Hydra's scan does not see them (why package-dir is set)."""
    source = tmp_path / "exca-hydra"
    source.mkdir()
    for name in ("README.md", "setup.cfg", "exca_hydra", "hydra_plugins"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'package-dir = { "" = "." }' in pyproject
    (source / "pyproject.toml").write_text(pyproject.replace('package-dir = { "" = "." }', ""))
    venv = Venv(tmp_path / "venv")
    venv.pip_install("-e", str(source))
    (tmp_path / "app.py").write_text(TINY_APP)
    proc = venv.run("app.py", "-m", "hydra/sweeper=exca", "x=1", cwd=tmp_path)
    assert proc.returncode == 1, _output(proc)
    assert any(m in proc.stderr for m in HYDRA_MISSES), proc.stderr
    assert HINT in proc.stderr and "through an import hook" in proc.stderr, proc.stderr
    assert "pip install -e ." in proc.stderr, proc.stderr


def test_the_declared_pythons_are_the_ones_scripts_test_runs() -> None:
    """pyproject's classifiers name exactly the Pythons `bash scripts/test` runs by default:
    python3 (the full suite) and its other Pythons (the tests not marked slurm); requires-python
    starts at the oldest of them."""
    import re

    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = set(re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject))
    script = (ROOT / "scripts" / "test").read_text()
    others = re.search(r"^OTHERS=\$\{EXCA_TEST_OTHER_PYTHONS-([\d. ]*)\}", script, re.M)
    assert others, "scripts/test: no default list of other Pythons"
    python3 = shutil.which("python3")
    assert python3, "no python3 on PATH (scripts/test runs the full suite with it)"
    main = subprocess.run([python3, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert declared == set(others.group(1).split()) | {main}
    oldest = min(declared, key=lambda v: tuple(map(int, v.split("."))))
    assert re.search(rf'^requires-python = ">={re.escape(oldest)}"', pyproject, re.M)
