"""The pydantic model is the single source of the config (issue 14).

Apps: tests/apps/noyaml/app.py (no config_path, no config_name: the config is Experiment's,
with nested unions ``model`` and ``model/opt``, descriptions, an infra; ``return exp.train()``),
tests/apps/noyaml/required.py (a required group and a required value), tests/apps/overlay/app.py
(the same model with a conf/ directory that only overrides; its task calls ``exp.train()`` among
other code), tests/apps/trainer and tests/apps/plain (covered by test_launcher.py, unchanged).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest
import yaml
from hydra import initialize, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton
from hydra.core.utils import setup_globals
from hydra.types import RunMode
from omegaconf import OmegaConf

from exca_hydra.bridge.start import generate
from exca_hydra.bridge.start import model_source
from exca_hydra.bridge.launch import schema
from exca_hydra.bridge.launch.convert import to_model
from exca_hydra.bridge.launch.compose import FastComposer
from exca_hydra.bridge.start.delegation import infra_calls
from exca_hydra.cache.uid import uid_config, uid_string
from test_compose import check, master_config
from test_launcher import APPS, PLAIN, Ctx

NOYAML = APPS / "noyaml"
OVERLAY = APPS / "overlay"
APP, REQUIRED, OVERLAY_APP = NOYAML / "app.py", NOYAML / "required.py", OVERLAY / "app.py"
if str(NOYAML) not in sys.path:  # same module name ("exp_models") as in the app processes
    sys.path.insert(0, str(NOYAML))

from exp_models import CNN, MLP, SGD, Adam, Cifar, Experiment  # noqa: E402

METHOD_DIR = "exp_models.Experiment.train,0"  # the one cache folder of Experiment.train
LAUNCH = ("hydra/launcher=exca_local", "hydra/sweeper=exca")


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def uid_of(**fields: tp.Any) -> str:
    return uid_string(uid_config(Experiment(**fields)))


# ----- 1. generation: defaults, groups, nested groups, required, TaskInfra -----
def test_generated_nodes_of_the_model() -> None:
    app = generate.generate(Experiment)
    primary = app.nodes["config"]
    assert primary["defaults"] == [{"model": "mlp"}, {"data": "mnist"}, "_self_"]  # the fields' defaults
    assert primary["seed"] == 3 and primary["tags"] == {}
    assert "scale" not in primary  # `scale: float = 1` would validate to 1.0: left to pydantic
    # TaskInfra: the keys set from the command line most (resources: +infra.gpus_per_node=...)
    assert primary["infra"] == {"folder": None, "cluster": None, "mode": "cached", "version": "0"}
    assert set(app.groups) == {"model", "model/opt", "data"}
    assert app.nodes["model/mlp"] == {"defaults": [{"opt": "sgd"}, "_self_"], "name": "mlp", "hidden": [64, 64]}
    assert app.nodes["model/cnn"] == {"defaults": [{"opt": "adam"}, "_self_"], "name": "cnn", "channels": 8}
    assert app.nodes["model/opt/sgd"] == {"name": "sgd", "lr": 0.01, "momentum": 0.0}
    assert app.nodes["data/cifar"] == {"name": "cifar", "batch_size": 32, "augment": True}
    assert app.required == []


def test_generation_edge_cases() -> None:
    class A(pydantic.BaseModel):
        kind: tp.Literal["a", "a2"] = "a"  # two tags: two options
        x: int = 1

    class B(pydantic.BaseModel):
        kind: tp.Literal["b"] = "b"
        y: str = "${not an interpolation}"

    class C(pydantic.BaseModel):
        kind: tp.Literal["c"]  # a tag without default
        z: float

    class Numbered(pydantic.BaseModel):
        kind: tp.Literal["2"] = "2"  # Hydra would read `f=2` as an int: no group

    class M(pydantic.BaseModel):
        annotated: tp.Annotated[A | B, pydantic.Field(discriminator="kind")] = B()
        optional: tp.Optional[tp.Annotated[A | C, pydantic.Field(discriminator="kind")]] = None
        implicit: A | B = A(x=5)  # no declared discriminator: the common Literal field; a default instance
        discriminator: A | B = pydantic.Field(discriminator=pydantic.Discriminator("kind"), default_factory=B)
        numbered: Numbered | B = pydantic.Field(Numbered(), discriminator="kind")
        bad_default: int = None  # type: ignore[assignment]  # invalid: left to pydantic
        aliased: int = pydantic.Field(2, alias="Aliased")
        required_value: list[int]

    app = generate.generate(M)
    primary = app.nodes["config"]
    assert primary["defaults"] == [
        {"annotated": "b"}, {"optional": None}, {"implicit": "a"}, {"discriminator": "b"}, "_self_"
    ]  # fmt: skip
    assert set(app.groups) == {"annotated", "optional", "implicit", "discriminator"}
    assert app.options("annotated") == ["a", "a2", "b"]
    assert app.nodes["annotated/a2"] == {"kind": "a2", "x": 1}
    assert app.nodes["annotated/b"] == {"kind": "b", "y": "\\${not an interpolation}"}
    assert OmegaConf.create(app.nodes["annotated/b"]).y == "${not an interpolation}"
    assert app.nodes["optional/c"] == {"kind": "c", "z": "???"}
    assert app.nodes["implicit/a"] == {"kind": "a", "x": 5}  # the default instance's values
    assert primary["numbered"] == {"kind": "2"} and "numbered" not in app.groups
    assert "bad_default" not in primary and primary["Aliased"] == 2 and primary["required_value"] == "???"

    class Bad(pydantic.BaseModel):
        defaults: int = 1

    with pytest.raises(schema.SchemaError, match="defaults list"):
        generate.generate(Bad)


def test_combining_a_yaml_defaults_list() -> None:
    generated = [{"model": "???"}, {"data": "mnist"}, "_self_"]
    given = [{"model": "conv"}, {"override hydra/launcher": "exca_local"}, "_self_"]
    assert model_source.combine_defaults(generated, given) == [
        {"data": "mnist"}, {"model": "conv"}, {"override hydra/launcher": "exca_local"}, "_self_"
    ]  # fmt: skip
    assert model_source.combine_defaults([{"opt": "adam"}, "_self_"], [{"override opt": "sgd"}]) == [{"opt": "sgd"}, "_self_"]
    merged = model_source.merge_node({"defaults": [{"opt": "adam"}, "_self_"], "name": "cnn", "channels": 8},
                               OmegaConf.create({"channels": 16, "extra": "???"}))  # fmt: skip
    assert OmegaConf.to_container(merged) == {
        "name": "cnn", "channels": 16, "extra": "???", "defaults": [{"opt": "adam"}, "_self_"]
    }  # fmt: skip
    merged = model_source.merge_node({"name": "conv", "layers": 2}, OmegaConf.create({"layers": "???"}))
    assert OmegaConf.is_missing(merged, "layers")  # a `???` of the file overrides too


def test_registration_cost() -> None:
    """Generating the nodes of the app's model and activating them: a few ms (measured)."""

    class Fresh(Experiment):  # a class not generated yet: no cache
        pass

    start = time.perf_counter()
    app = generate.generate(Fresh)
    model_source.activate(app)
    elapsed = (time.perf_counter() - start) * 1000
    model_source._ACTIVE.clear()
    print(f"registration: {elapsed:.2f} ms for {len(app.nodes)} nodes")
    assert elapsed < 50, elapsed  # a few ms; generous on a shared 2-core machine


# ----- 2. Hydra's compose of the generated config: values, uids, fast compose -----
@pytest.fixture
def loader(request: pytest.FixtureRequest) -> tp.Iterator[tp.Any]:
    """Hydra's config loader with Experiment's generated nodes (param: None = no YAML, else the
    overlay app's conf dir)."""
    state = Singleton.get_state()
    setup_globals()
    app = generate.generate(Experiment)
    conf = getattr(request, "param", None)
    try:
        with model_source.activated(app):  # before Hydra's initialization, which builds the search path
            context = (
                initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="model_config_test")
                if conf is not None
                else initialize(config_path=None, version_base="1.3", job_name="model_config_test")
            )
            with context:
                yield GlobalHydra.instance().config_loader()
    finally:
        Singleton.set_state(state)


def compose(loader: tp.Any, *overrides: str) -> tp.Any:
    return loader.load_configuration("config", list(overrides), RunMode.RUN)


def test_composed_config_and_uids_are_the_models(loader: tp.Any) -> None:
    cfg = compose(loader, "seed=5", "model=cnn", "model/opt=sgd", "model.opt.momentum=0.9", "data.batch_size=8")
    assert cfg.model == {"opt": {"name": "sgd", "lr": 0.01, "momentum": 0.9}, "name": "cnn", "channels": 8}
    assert cfg.hydra.runtime.choices["model/opt"] == "sgd"
    obj = to_model(cfg, Experiment)
    expected = Experiment(seed=5, model=CNN(opt=SGD(momentum=0.9)), data={"name": "mnist", "batch_size": 8})
    assert obj == expected
    cases: list[tuple[tuple[str, ...], dict[str, tp.Any]]] = [
        ((), {}),
        (("model=cnn",), {"model": CNN()}),
        (("model=cnn", "model/opt=sgd"), {"model": CNN(opt=SGD())}),
        (("model.hidden=[64,64]", "data=cifar"), {"data": Cifar()}),
        (("model/opt=adam", "infra.version=2"), {"model": MLP(opt=Adam()), "infra": {"version": "2"}}),
        (("scale=2",), {"scale": 2}),  # ...is not in the config: Hydra's struct mode says so
    ]
    for overrides, fields in cases[:-1]:
        obj = to_model(compose(loader, *overrides), Experiment)
        assert uid_string(uid_config(obj)) == uid_of(**fields), overrides  # the uid Python gives
    with pytest.raises(Exception, match="scale"):
        compose(loader, "scale=2")
    assert to_model(compose(loader, "+scale=2"), Experiment).scale == 2.0


FAST_CORPUS: list[tuple[list[str], bool]] = [
    ([], True),
    (["seed=5"], True),
    (["model=cnn"], True),
    (["model=cnn", "model/opt=sgd", "model.opt.momentum=0.9"], True),
    (["model=mlp", "model/opt=adam", "model.hidden=[1,2]"], True),
    (["data=cifar", "data.batch_size=8", "infra.cluster=local"], True),
    (["model=cnn", "model.channels=3", "data=cifar"], True),
    (["tags={a:b}"], False),  # a new key in a closed dict: Hydra's error (+tags.a=b adds it)
    (["model=mlp", "model.channels=3"], False),  # not an MLP field: Hydra's error
    (["model=cnnn"], False),
    (["+scale=2"], False),
]


@pytest.mark.parametrize("loader", [None, OVERLAY / "conf"], indirect=True, ids=["noyaml", "overlay"])
def test_fast_compose_is_hydras_for_generated_groups(loader: tp.Any) -> None:
    master = master_config(loader, ["hydra.sweep.dir=/tmp/exca-model-config-test"])
    composer = FastComposer(loader, master)
    for overrides, fast in FAST_CORPUS:
        before = composer.counts["fast"]
        check(loader, master, composer, overrides)
        assert composer.counts["fast"] - before == int(fast), overrides


@pytest.mark.parametrize("loader", [OVERLAY / "conf"], indirect=True, ids=["overlay"])
def test_yaml_only_overrides(loader: tp.Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCA_HYDRA_CACHE", str(tmp_path))  # conf/config.yaml's infra.folder
    cfg = compose(loader)
    assert cfg.seed == 7 and cfg.model.name == "cnn" and cfg.model.channels == 16  # conf/config.yaml, cnn.yaml
    assert cfg.model.opt == {"name": "adam", "lr": 0.001}  # generated, not repeated in cnn.yaml
    assert cfg.data == {"name": "mnist", "batch_size": 16} and cfg.infra.cluster is None
    big = compose(loader, "model=cnn_big", "model/opt=sgd")  # `defaults: [cnn]`, channels: 64
    assert big.model == {"opt": {"name": "sgd", "lr": 0.01, "momentum": 0.0}, "name": "cnn", "channels": 64}
    small = compose(loader, "model=small")  # a tag and values: the mlp option under it
    assert small.model == {"opt": {"name": "sgd", "lr": 0.01, "momentum": 0.0}, "name": "mlp", "hidden": [8]}
    source = next(s for s in loader.repository.get_sources() if isinstance(s, model_source.ModelSource))
    swapped = OmegaConf.create({"name": "mlp", "hidden": [1]})  # e.g. model/cnn.yaml setting another tag
    assert source._tag_mismatch("model/cnn", swapped) and not source._tag_mismatch("model/mlp", swapped)
    assert source._known_tag_option("model/cnn", swapped) == generate.generate(Experiment).nodes["model/mlp"]
    obj = to_model(compose(loader, "model=small", "model.hidden=[8]"), Experiment)
    assert obj.model == MLP(hidden=[8]) and obj.seed == 7 and obj.infra.folder == tmp_path


def test_a_yaml_switching_a_union_member_drops_the_old_members_defaults(ctx: Ctx) -> None:
    """Issue 22 (a regression): conf/model/cnn.yaml sets ``opt: {name: sgd, momentum: 0.9}`` where
    CNN's generated default is adam, conf/config.yaml sets ``data: {name: cifar}`` where the
    default is mnist: the new member's defaults, not the old one's, go under the file's values."""
    app = APPS / "yamlswitch" / "app.py"
    r = ctx.run(app, multirun=False)
    assert r.code == 0, r.err
    # SGD's lr (0.01), not Adam's (0.001); Cifar's batch_size (32), not Mnist's (16)
    assert "opt=SGD(name='sgd', lr=0.01, momentum=0.9)" in r.out, r.out
    assert "data=Cifar(name='cifar', batch_size=32, augment=False)" in r.out, r.out
    r = ctx.run(app, "model/opt=sgd", "model.opt.lr=0.5", multirun=False)
    assert r.code == 0 and "opt=SGD(name='sgd', lr=0.5, momentum=0.9)" in r.out, r.err
    r = ctx.run(app, "model=cnn,mlp", "hydra/launcher=exca_local", "hydra/sweeper=exca")
    assert r.code == 0, r.err
    runs = sorted((ctx.sweep_dir).glob("*/.hydra/config.yaml"))
    assert len(runs) == 2, (r.out, r.err)
    opts = sorted(yaml.safe_load(p.read_text())["model"]["opt"]["lr"] for p in runs)
    assert opts == [0.01, 0.01]  # cnn: the file's sgd with SGD's defaults; mlp: SGD by default


# ----- 3. the apps, run as subprocesses -----
def test_noyaml_single_runs(ctx: Ctx) -> None:
    r = ctx.run(APP, "seed=5", "model=cnn", "model/opt=sgd", "model.opt.momentum=0.9", "data=cifar", multirun=False)
    assert r.code == 0, r.err
    r = ctx.run(APP, "model.hidden=[64,64]", "data.batch_size=16", multirun=False)  # no `+` needed
    assert r.code == 0, r.err
    assert ctx.lines() == ["train seed=5 model=cnn opt=sgd data=cifar", "train seed=3 model=mlp opt=sgd data=mnist"]
    r = ctx.run(APP, "model=cnn", "data=cifar", flags=["--cfg", "job"], multirun=False)
    cfg = yaml.safe_load(r.out)
    assert cfg["model"] == {"opt": {"name": "adam", "lr": 0.001}, "name": "cnn", "channels": 8}  # the option's defaults
    assert cfg["data"] == {"name": "cifar", "batch_size": 32, "augment": True} and cfg["seed"] == 3
    assert cfg["infra"]["folder"] is None and cfg["infra"]["cluster"] is None


def test_help_lists_fields_and_groups(ctx: Ctx) -> None:
    r = ctx.run(APP, flags=["--help"], multirun=False)
    assert r.code == 0, r.err
    assert "model: cnn, mlp" in r.out and "model/opt: adam, sgd" in r.out and "data: cifar, mnist" in r.out
    rows = {line.split()[0]: line for line in r.out.splitlines() if line and not line.startswith(("=", " "))}
    assert rows["seed"].split()[1:4] == ["int", "3", "Random"] and "Random seed of the run." in rows["seed"]
    assert "group: cnn | mlp" in rows["model"] and "model=mlp" in rows["model"] and "The network." in rows["model"]
    assert rows["model.hidden"].split()[1:] == ["list[int]", "[64,", "64]"]
    assert "Heavy-ball momentum." in rows["model.opt.momentum"]  # the chosen option's fields
    assert "infra.folder" in rows and "model.channels" not in rows
    r = ctx.run(APP, "model=cnn", flags=["--help"], multirun=False)
    assert "model.channels" in r.out and "model/opt=adam" in r.out
    r = ctx.run(REQUIRED, flags=["--help"], multirun=False)  # a required group does not break --help
    assert r.code == 0, r.err
    assert "??? (choose one)" in r.out and "The data set: choose one." in r.out and "Number of steps" in r.out
    ctx.assert_nothing_ran()


@pytest.mark.parametrize(
    "args, expected",
    [
        (("model.hiden=[3]",), ["Could not override 'model.hiden'", "Did you mean 'model.hidden'?"]),
        (("model=cnnn",), ["Could not find 'model/cnnn'", "Did you mean 'cnn'?", "Available options in 'model': cnn, mlp"]),
        (("-m", "model=mlp,cnnn"), ["Could not find 'model/cnnn'", "Did you mean 'cnn'?"]),
        (("modle=cnn",), ["Could not override 'modle'", "Did you mean 'model'?"]),
        (("model/optt=sgd",), ["no config group 'model/optt'", "Did you mean 'model/opt'"]),
        (("model.opt.momentun=0.9",), ["Did you mean 'model.opt.momentum'?"]),
        (("data.batchsize=3",), ["Did you mean 'data.batch_size'?"]),
    ],
)
def test_misspelt_overrides_get_the_closest_names(ctx: Ctx, args: tuple[str, ...], expected: list[str]) -> None:
    r = ctx.run(APP, *args, *LAUNCH, multirun=False)
    assert r.code == 1
    for text in expected:
        assert text in r.err, r.err
    assert "Traceback" not in r.err
    ctx.assert_nothing_ran()


def test_validation_messages_stay(ctx: Ctx) -> None:
    r = ctx.run(APP, "model=mlp,cnn", "seed=1,abc", *LAUNCH)
    assert r.code != 0
    assert "2 of 4 job(s) have an invalid config" in r.err and "#1 : model=mlp seed=abc" in r.err, r.err
    assert "seed: Input should be a valid integer" in r.err and "Traceback" not in r.err
    r = ctx.run(APP, "model=cnn", "+model.hidden=[3]", multirun=False)  # `+` is left to pydantic
    assert r.code == 1 and "model.cnn.hidden: Extra inputs are not permitted" in r.err, r.err
    ctx.assert_nothing_ran()


def test_required_group_and_value(ctx: Ctx) -> None:
    for multirun in (False, True):
        r = ctx.run(REQUIRED, "steps=2", *LAUNCH, multirun=multirun)
        assert r.code == 1 and "You must specify 'data', e.g, data=<OPTION>" in r.err and "Traceback" not in r.err
    r = ctx.run(REQUIRED, "data=mnist,cifar", *LAUNCH)
    assert r.code == 1 and "steps: MissingMandatoryValue" in r.err and "2 of 2 job(s)" in r.err, r.err
    ctx.assert_nothing_ran()
    r = ctx.run(REQUIRED, "data=cifar", "steps=3", "model=cnn", "model/opt=sgd", multirun=False)
    assert r.code == 0 and "required data=cifar steps=3 model=cnn" in r.out, r.err


@pytest.mark.parametrize("launcher, sweeper", [("exca_local", "exca"), ("exca_local", "basic"), ("basic", "exca"), ("basic", "basic")])
def test_sweep_one_cache_entry_per_computation(ctx: Ctx, launcher: str, sweeper: str) -> None:
    """`return exp.train()`: the app is Experiment.train, one entry per config (the method's),
    shared with Python; under the exca sweeper a re-run is all cached."""
    args = ("model=mlp,cnn", "data=mnist,cifar", f"infra.folder={ctx.cache}", f"hydra/launcher={launcher}", f"hydra/sweeper={sweeper}")
    r = ctx.run(APP, *args)
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 4
    assert [p.name for p in ctx.cache.iterdir()] == [METHOD_DIR]
    uids = {uid_of(model=m, data=d) for m in (MLP(), CNN()) for d in ({"name": "mnist"}, Cifar())}
    assert {p.name for p in (ctx.cache / METHOD_DIR).iterdir()} == uids
    r = ctx.run(APP, *args)
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 4  # nothing recomputed
    if sweeper == "exca":
        assert "4 cached, 0 running, 0 to run" in r.out + r.err, r.out


def test_python_cache_is_a_hit_for_the_cli(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """Configs cached from Python keep their uids whatever produced the config."""
    monkeypatch.setenv("EXCA_TEST_LOG", str(ctx.log))
    for fields in ({}, {"model": CNN(opt=SGD())}, {"seed": 1, "data": Cifar()}):
        Experiment(**fields, infra={"folder": ctx.cache}).train()
    assert len(ctx.lines()) == 3
    # model=mlp model/opt=sgd (mlp's default) is Experiment(); model=cnn model/opt=sgd the second
    r = ctx.run(APP, "model=mlp,cnn", "model/opt=sgd", "seed=3,4", f"infra.folder={ctx.cache}", *LAUNCH)
    assert r.code == 0, r.err
    assert "4 job(s): 2 cached, 0 running, 2 to run" in r.out + r.err, r.out
    r = ctx.run(APP, "seed=1", "data=cifar", f"infra.folder={ctx.cache}", *LAUNCH)
    assert "1 cached, 0 running, 0 to run" in r.out + r.err, r.out
    assert len(ctx.lines()) == 5


def test_overlay_app_runs_and_caches_once(ctx: Ctx) -> None:
    """The task calls exp.train() among other code: the app does not cache its return value too."""
    r = ctx.run(OVERLAY_APP, "model=cnn,cnn_big,small", "model/opt=sgd")
    assert r.code == 0, r.err
    assert sorted(ctx.lines()) == ["train seed=7 model=cnn opt=sgd data=mnist"] * 2 + ["train seed=7 model=mlp opt=sgd data=mnist"]
    assert [p.name for p in ctx.cache.iterdir()] == [METHOD_DIR] and len(list((ctx.cache / METHOD_DIR).iterdir())) == 3
    r = ctx.run(OVERLAY_APP, "model=cnn,cnn_big,small", "model/opt=sgd")
    assert r.code == 0, r.err
    assert len(ctx.lines()) == 3  # each job ran again, reading the method's cache
    r = ctx.run(OVERLAY_APP, multirun=False)
    assert r.code == 0 and "overlay got: train seed=7 model=cnn opt=adam data=mnist" in r.out, r.err
    r = ctx.run(OVERLAY_APP, "model=cnnbig", multirun=False)
    assert r.code == 1 and "Did you mean 'cnn_big'" in r.err and "small" in r.err  # YAML-only options too


def test_plain_hydra_app_is_unchanged(ctx: Ctx) -> None:
    r = ctx.run(PLAIN / "app.py", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0 and yaml.safe_load(r.out) == {"x": 1, "name": "plain"}, r.out + r.err
    r = ctx.run(PLAIN / "app.py", "y=1", multirun=False)  # Hydra's own message, no suggestion
    assert r.code == 1 and "Could not override 'y'" in r.err and "Did you mean" not in r.err


def test_explain_takes_the_apps_overrides(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    from exca_hydra.cli import main as cli

    r = ctx.run(APP, "model=mlp,cnn", f"infra.folder={ctx.cache}", *LAUNCH)
    assert r.code == 0, r.err
    assert cli(["explain", str(ctx.cache), "model=cnn"]) == 0
    assert "Cached:" in capsys.readouterr().out
    assert cli(["explain", str(ctx.cache), "model=mlp", "model.hidden=[64,64]", "hydra/launcher=exca_local"]) == 0
    capsys.readouterr()
    assert cli(["explain", str(ctx.cache), "model=cnn", "model/opt=sgd", "model.channels=8", "seed=1"]) == 1
    out = capsys.readouterr().out
    assert 'model.opt: wanted "sgd", cached "adam"' in out and "seed: wanted 1, cached 3" in out, out
    assert cli(["explain", str(ctx.cache), "model=mlp,cnn"]) == 2


# ----- 4. which cache the app's result goes to -----
def test_delegation_is_read_from_the_task() -> None:
    def exact(exp: Experiment) -> str:
        """A docstring."""
        return exp.train()

    def more(exp: Experiment) -> str:
        result = exp.train()
        return result.upper()

    def other(exp: Experiment) -> str:
        net = object()
        return str(net.train() if hasattr(net, "train") else exp.seed)  # not the config's method

    assert infra_calls(exact, Experiment) == ("train", True)
    assert infra_calls(more, Experiment) == (None, True)
    assert infra_calls(other, Experiment) == (None, False)
    assert infra_calls(Experiment.train, Experiment) == (None, False)  # already the method form


def test_an_infra_node_holds_what_its_default_sets() -> None:
    """What the field's default sets is in the node (kept as the class default says), the ~30
    resources are not: each node is cloned and converted for every job of a sweep."""
    import pydantic

    from exca_hydra import TaskInfra

    class Job(pydantic.BaseModel):
        x: int = 0
        infra: TaskInfra = TaskInfra(version="2", gpus_per_node=1)

        @infra.apply
        def run(self) -> int:
            return self.x

    node = generate.generate(Job).nodes["config"]["infra"]
    assert node == {"folder": None, "cluster": None, "mode": "cached", "version": "2", "gpus_per_node": 1}


@pytest.mark.parametrize("launcher", ["exca_local", "submitit_local", "joblib"])
def test_a_model_in_the_script_is_cached_under_the_script_name(ctx: Ctx, launcher: str) -> None:
    """Issue 22: a model class defined in the app script: its folder is named after the script
    (models_app.Exp.train,0) whatever process runs the job (submitit's, joblib's, a fork), so
    a second sweep under any launcher is a cache hit, and uid_folder() inside the job is the entry's."""
    app = APPS / "inscript" / "models_app.py"
    sweeper = ["hydra/sweeper=exca"] if launcher == "exca_local" else ["hydra/sweeper=basic"]
    args = ("seed=1,2", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}", f"hydra/launcher={launcher}", *sweeper)
    r = ctx.run(app, *args)
    assert r.code == 0, r.err
    assert sorted(p.name for p in ctx.cache.iterdir()) == ["models_app.Exp.train,0"]
    entries = {p.name for p in (ctx.cache / "models_app.Exp.train,0").iterdir()}
    lines = ctx.lines()
    assert len(lines) == 2 and all(any(f"folder={ctx.cache}/models_app.Exp.train,0/{e}" in line for e in entries) for line in lines), lines
    for other in ("exca_local", "submitit_local", "joblib"):  # the same entries, whoever runs them
        sweeper = ["hydra/sweeper=exca"] if other == "exca_local" else ["hydra/sweeper=basic"]
        r = ctx.run(app, *args[:2], f"hydra/launcher={other}", *sweeper)
        assert r.code == 0, r.err
    assert len(ctx.lines()) == 2, ctx.lines()  # no job computed again


def test_an_app_without_yaml_sweeps_through_the_exca_plugins(ctx: Ctx) -> None:
    """Issue 22: no YAML, no hydra/launcher=...: the exca launcher and sweeper are the defaults
    (a sweep is validated up front and cached), overridable as usual; --help says where the cache goes."""
    r = ctx.run(APP, flags=["--cfg", "hydra"], multirun=False)
    assert "hydra/launcher: exca_local" in r.out and "hydra/sweeper: exca" in r.out, r.out
    r = ctx.run(APP, "seed=1,2", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 0, r.err
    assert len(ctx.cache_entries()) == 2 and len(ctx.lines()) == 2
    r = ctx.run(APP, "seed=1,2", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 0 and len(ctx.lines()) == 2, r.err  # the exca sweeper: both cached
    r = ctx.run(APP, "hydra/launcher=basic", "hydra/sweeper=basic", flags=["--cfg", "hydra"], multirun=False)
    assert "hydra/launcher: basic" in r.out and "hydra/sweeper: basic" in r.out, r.out
    r = ctx.run(APP, flags=["--help"], multirun=False)
    assert "infra.folder=/path/to/cache" in r.out and "exca_local" in r.out, r.out


def test_help_prints_overrides_in_the_form_that_works(ctx: Ctx) -> None:
    """Issue 22: --help lists TaskInfra's resources (not in the config until added) as
    +infra.gpus_per_node; each field, typed as printed, is accepted."""
    r = ctx.run(APP, flags=["--help"], multirun=False)
    printed = {line.split()[0] for line in r.out.splitlines() if line.strip() and "." in line.split()[0]}
    assert "+infra.gpus_per_node" in printed and "infra.folder" in printed and "+infra.folder" not in printed, r.out
    for key, value in (("+infra.gpus_per_node", "2"), ("infra.cluster", "local"), ("model.hidden", "[1]")):
        assert key in printed
        r = ctx.run(APP, f"{key}={value}", flags=["--cfg", "job"], multirun=False)
        assert r.code == 0, (key, r.err)
        assert f"{key.lstrip('+').split('.')[-1]}:" in r.out


def test_shell_completion_lists_the_generated_groups_fields_and_options(ctx: Ctx) -> None:
    """Issue 22: -sc install=bash prints Hydra's completion script; -sc query=bash completes the
    generated groups, their options and the fields."""
    r = ctx.run(APP, "install=bash", flags=["-sc"], multirun=False)
    assert r.code == 0 and "hydra_bash_completion" in r.out, r.err
    env = {**os.environ, "EXCA_HYDRA_CACHE": str(ctx.cache)}

    def complete(line: str) -> list[str]:
        proc = subprocess.run([sys.executable, str(APP), "-sc", "query=bash"], env={**env, "COMP_LINE": f"python app.py {line}"},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("model=") == ["model=cnn", "model=mlp"]
    assert "data=cifar" in complete("data=") and "model.opt." in complete("model.o")
    assert "seed=" in complete("se")


def test_a_field_of_another_option_says_which_option_has_it(ctx: Ctx) -> None:
    """Issue 22: model.channels=8 while model=mlp (the default) is a field of model=cnn: say so,
    and how to select it, instead of Hydra's advice to add it with a '+'."""
    r = ctx.run(APP, "model.channels=8", multirun=False)
    assert r.code == 1 and "'channels' is a field of model=cnn, not of model=mlp" in r.err, r.err
    assert "model=cnn model.channels=8" in r.err and "+model" not in r.err, r.err
    r = ctx.run(APP, "model=cnn", "model.opt.momentum=0.5", multirun=False)  # a nested group's default (adam)
    assert r.code == 1 and "model/opt=sgd" in r.err, r.err
    r = ctx.run(APP, "model=cnn", "model.channels=8", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0 and "channels: 8" in r.out, r.err


def test_a_map_model_in_the_script_keeps_its_item_folder_under_every_launcher(ctx: Ctx) -> None:
    """Found by the red team (F8): a MapInfra sub-config of a model defined in the script had its
    item folder named after the job process's __main__ (submitit.core._submit.Features.embed,0,
    joblib...): items computed again under each launcher. Now map_app.Features.embed,0 always."""
    app = APPS / "inscript" / "map_app.py"
    for launcher in ("exca_local", "submitit_local", "joblib"):
        sweeper = "hydra/sweeper=exca" if launcher == "exca_local" else "hydra/sweeper=basic"
        seeds = {"exca_local": "1,2", "submitit_local": "3,4", "joblib": "5,6"}[launcher]  # new jobs, same items
        r = ctx.run(app, f"seed={seeds}", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}", "feats.infra.folder=${oc.env:EXCA_HYDRA_CACHE}",
                    f"hydra/launcher={launcher}", sweeper)  # fmt: skip
        assert r.code == 0, r.err
        assert sorted(p.name for p in ctx.cache.iterdir()) == ["map_app.Exp.train,0", "map_app.Features.embed,0"], launcher
    assert sorted(ctx.lines()) == ["item a", "item bb", "item ccc"], ctx.lines()  # each item once, six jobs


def test_a_sweep_says_when_a_map_sub_config_has_no_cache_folder(ctx: Ctx) -> None:
    """Found by the red team (F14): with infra.folder set but not feats.infra.folder, the items were
    computed by every job, every run, and nothing said so."""
    app = APPS / "inscript" / "map_app.py"
    r = ctx.run(app, "seed=1,2", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 0, r.err
    said = "feats.infra.folder is not set, so the items of Features.embed are not cached (each job computes them again)"
    assert said in r.err + r.out, r.err
    r = ctx.run(app, "seed=3", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}", "feats.infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 0 and "not cached" not in r.err + r.out, r.err
