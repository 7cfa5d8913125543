"""Hydra's own plugin test suites, run against our launchers."""

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from pytest import mark


def test_discovery() -> None:
    names = [cls.__name__ for cls in Plugins.instance().discover(Launcher)]
    assert "ExcaLocalLauncher" in names and "ExcaSlurmLauncher" in names


@mark.parametrize("launcher_name, overrides", [("exca_local", [])])
class TestExcaLocalLauncher(LauncherTestSuite):
    pass


@mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", "hydra/launcher=exca_local"])])
class TestExcaLocalLauncherIntegration(IntegrationTestSuite):
    pass


@mark.parametrize(
    "launcher_name, overrides", [("exca_local", ["hydra/sweeper=exca"]), ("basic", ["hydra/sweeper=exca"])]
)
class TestExcaSweeper(LauncherTestSuite):
    pass


@mark.parametrize(
    "launcher_name, overrides",
    [
        ("basic", ["hydra/sweeper=exca", "hydra.sweeper.max_batch_size=2"]),
        ("exca_local", ["hydra/sweeper=exca", "hydra.sweeper.max_batch_size=2"]),
    ],
)
class TestExcaSweeperBatched(BatchedSweeperTestSuite):
    pass
