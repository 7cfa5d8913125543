"""The fast composer gives exactly Hydra's ``load_sweep_config`` result (issue 6).

Every job of every sweep below is composed twice, by ``exca_hydra.compose.FastComposer`` and by
Hydra's own ``ConfigLoaderImpl.load_sweep_config``; the unresolved containers, the resolved task
values, the struct/readonly flags and, where Hydra fails, the error must be the same.
App: tests/apps/compose/conf (config groups ``db`` and ``server/site`` in the defaults list, ``opt``
outside it, interpolations, ``null``, nested keys, lists, ``${hydra:...}`` values).
"""

from __future__ import annotations

import typing as tp
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import setup_globals
from hydra.types import RunMode
from omegaconf import OmegaConf

from exca_hydra.bridge.launch.compose import FastComposer

CONF = Path(__file__).parent / "apps" / "compose" / "conf"

# (overrides of one job, True if the fast path must handle it without Hydra's compose)
CORPUS: list[tuple[list[str], bool]] = [
    ([], True),
    (["x=2"], True),
    (["x=null"], True),
    (["z=3"], True),
    (["y=5"], True),
    (["x='a,b'"], True),
    (["x=\"1\""], True),
    (["x=1.5", "flag=false"], True),
    (["x=inf"], True),
    (["s='with space'"], True),
    (["x=${nested.a}"], True),
    (["nested.d.e=${x}", "x=7"], True),
    (["nested.a=5"], True),
    (["nested.b=[4,5]"], True),
    (["nested.b=[]"], True),
    (["nested={a:9}"], True),
    (["lst=[c,'d e',null]"], True),
    (["x=[1,2]"], True),
    (["x={k:v}"], True),
    (["x=1", "x=2"], True),
    (["db=postgres"], True),
    (["db=postgres", "x=3"], True),
    (["x=3", "db=postgres"], True),
    (["db=postgres", "db.timeout=3"], True),
    (["db.port=1"], True),
    (["db.port=${x}", "x=11"], True),
    (["db={driver:z}"], True),
    (["server/site=b"], True),
    (["server/site=b", "server.site.extra=2"], True),
    (["db=postgres", "server/site=b", "nested.b=[9]"], True),
    (["+opt=o1"], True),
    (["+opt=o2", "x=5"], True),
    (["~db"], True),
    (["db=postgres", "~server/site"], True),
    # Hydra's full compose (order-sensitive, hydra.*, errors)
    (["+new=1"], False),
    (["++x=7"], False),
    (["++new.deep=1"], False),
    (["~z"], False),
    (["~nested.b"], False),
    (["~x=1"], False),
    (["+x=1"], False),
    (["x=2", "~x"], False),
    (["hydra.job.name=other"], False),
    (["hydra.job.config.override_dirname.kv_sep=:", "x=1"], False),
    (["unknown=1"], False),
    (["db.timeout=3"], False),  # mysql has no timeout: Hydra's error
    (["db=nope"], False),
    (["opt=o1"], False),  # not in the defaults list: Hydra's error
    (["x=1,2"], False),  # a sweep in a single job: Hydra's error
    (["x=[1,2"], False),  # parse error
    (["db@other=postgres"], False),
]

MASTERS = [
    [],
    ["hydra.sweep.dir=/tmp/exca-compose-test", "hydra.job.config.override_dirname.exclude_keys=[db]"],
    ["hydra/launcher=exca_local", "hydra.job.config.override_dirname.item_sep=_"],
]


@pytest.fixture(scope="module")
def loader() -> tp.Iterator[tp.Any]:
    state = Singleton.get_state()  # initialize_config_dir sets Hydra's version base process-wide
    setup_globals()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="compose_test"):
            yield GlobalHydra.instance().config_loader()
    finally:
        Singleton.set_state(state)


def master_config(loader: tp.Any, overrides: list[str]) -> tp.Any:
    master = loader.load_configuration("config", overrides, RunMode.MULTIRUN)
    str(master.hydra.sweep.dir)  # as the sweeper does: caches ${now:...} in the master
    return master


def outcome(compose: tp.Callable[[list[str]], tp.Any], overrides: list[str]) -> tp.Any:
    try:
        cfg = compose(list(overrides))
    except Exception as e:  # noqa: BLE001 - the error itself is compared
        return ("error", type(e).__name__, str(e), type(e.__cause__).__name__)
    raw = OmegaConf.to_container(cfg, resolve=False)
    flags = (OmegaConf.is_struct(cfg), OmegaConf.is_readonly(cfg), OmegaConf.is_readonly(cfg.hydra))
    types = (OmegaConf.get_type(cfg, "hydra"), OmegaConf.get_type(cfg.hydra, "job"))
    HydraConfig.instance().set_config(cfg)
    task = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    try:
        resolved = OmegaConf.to_container(task, resolve=True)
    except Exception as e:  # noqa: BLE001
        resolved = ("unresolvable", type(e).__name__, str(e))
    return ("ok", raw, resolved, flags, types)


def check(loader: tp.Any, master: tp.Any, composer: FastComposer, overrides: list[str]) -> None:
    expected = outcome(lambda o: loader.load_sweep_config(master, o), overrides)
    got = outcome(composer.compose, overrides)
    assert got == expected, overrides


@pytest.mark.parametrize("master_overrides", MASTERS)
def test_corpus_identical_to_hydra(loader: tp.Any, master_overrides: list[str]) -> None:
    master = master_config(loader, master_overrides)
    composer = FastComposer(loader, master)
    for overrides, fast in CORPUS:
        before = composer.counts["fast"]
        check(loader, master, composer, overrides)
        assert composer.counts["fast"] - before == int(fast), f"fast path expected={fast}: {overrides}"


def test_sweep_composes_each_group_combination_once(loader: tp.Any) -> None:
    master = master_config(loader, MASTERS[1])
    composer = FastComposer(loader, master)
    jobs = [[f"db={db}", f"x={x}", f"nested.b=[{x}]"] for db in ("mysql", "postgres") for x in range(20)]
    for overrides in jobs:
        check(loader, master, composer, overrides)
    assert composer.counts == {"fast": 40, "full": 0, "bases": 2}


POOL = [overrides for overrides, _ in CORPUS]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sweep=st.lists(
        st.lists(st.sampled_from(POOL), min_size=1, max_size=3).map(lambda parts: [o for part in parts for o in part]),
        min_size=1,
        max_size=4,
    ),
    master_index=st.integers(0, len(MASTERS) - 1),
)
def test_random_sweeps_identical_to_hydra(loader: tp.Any, sweep: list[list[str]], master_index: int) -> None:
    master = master_config(loader, MASTERS[master_index])
    composer = FastComposer(loader, master)  # one composer per sweep, as in prepare()
    for overrides in sweep:
        check(loader, master, composer, overrides)


def test_launcher_compose_sets_job_id_and_num_as_hydra(loader: tp.Any) -> None:
    """The launcher's compose == load_sweep_config + BasicLauncher's `hydra.job.id/num = ...`."""
    from omegaconf import open_dict

    from exca_hydra.bridge.launch.compose import composer_for

    master = master_config(loader, MASTERS[1])
    for num, (overrides, _) in enumerate(CORPUS[:34]):  # the jobs Hydra composes without error
        expected = loader.load_sweep_config(master, list(overrides))
        with open_dict(expected):
            expected.hydra.job.id = f"{num}"
            expected.hydra.job.num = num
        got = composer_for(loader, master).compose_job(overrides, num)[0]
        assert OmegaConf.to_container(got, resolve=False) == OmegaConf.to_container(expected, resolve=False)
        assert got.hydra.job.num == num and got.hydra.job.id == f"{num}"


def test_pickled_recipes_rebuild_hydras_configs(loader: tp.Any) -> None:
    """What a job process gets (issue 6, bytes per job): the recipes of a sweep, pickled together
    (each base config once), rebuild there the config Hydra composes, ``hydra.job.id/num`` set as
    Hydra's launchers set them."""
    import pickle

    from omegaconf import open_dict

    from exca_hydra.bridge.launch import compose as compose_module

    master = master_config(loader, MASTERS[1])
    composer = FastComposer(loader, master)
    sweeps = [overrides for overrides, fast in CORPUS if fast] + [[f"db={db}", f"x={x}"] for db in ("mysql", "postgres") for x in range(50)]
    recipes, expected = [], []
    for num, overrides in enumerate(sweeps):
        cfg, recipe = composer.compose_job(overrides, num)
        assert recipe is not None, overrides
        hydras = loader.load_sweep_config(master, list(overrides))
        with open_dict(hydras):
            hydras.hydra.job.id = f"{num}"
            hydras.hydra.job.num = num
        expected.append(outcome(lambda _: hydras, overrides))
        assert outcome(lambda _: cfg, overrides) == expected[-1], overrides
        recipes.append(recipe)
    bases = {id(recipe.base): recipe.base for recipe in recipes}
    data = pickle.dumps(recipes)
    per_job = (len(data) - len(pickle.dumps(list(bases.values())))) / len(recipes)
    assert per_job < 200, per_job
    compose_module._LINES.clear()  # as in a new process: the lines are parsed again
    rebuilt = pickle.loads(data)
    assert len({id(recipe.base) for recipe in rebuilt}) == len(bases)
    for recipe, overrides, want in zip(rebuilt, sweeps, expected):
        assert outcome(lambda _: recipe.build(), overrides) == want, overrides
    got = rebuilt[3].build("1234_5")
    assert (got.hydra.job.id, got.hydra.job.num) == ("1234_5", 3)
