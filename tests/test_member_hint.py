"""A field of another union member (issue 22): which member has it and how to select it, also
for an app with a conf/ directory (the YAML's choices count) and for a swept group."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_launcher import APPS, Ctx

SWITCH = APPS / "switch" / "app.py"  # conf/model/cnn.yaml switches CNN's optimizer to sgd
NOYAML = APPS / "noyaml" / "app.py"


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


@pytest.mark.parametrize(
    "app, args, expected",
    [
        (SWITCH, ("model.channels=8",), "'channels' is a field of model=cnn, not of model=mlp"),  # an app with YAML
        (SWITCH, ("model=cnn", "model.opt.beta=0.5"), "'beta' is a field of model/opt=adam, not of model/opt=sgd"),  # the YAML's sgd
        (NOYAML, ("-m", "model=cnn,mlp", "model.channels=8"), "'channels' is a field of model=cnn, not of model=mlp"),  # a sweep
    ],
)
def test_a_field_of_another_member_names_it(ctx: Ctx, app: Path, args: tuple[str, ...], expected: str) -> None:
    r = ctx.run(app, *args, multirun=False)
    assert r.code == 1 and expected in r.err, r.err
    assert "+model" not in r.err and "Traceback" not in r.err
    ctx.assert_nothing_ran()


def test_a_field_of_the_member_the_yaml_selects_is_accepted(ctx: Ctx) -> None:
    r = ctx.run(SWITCH, "model=cnn", "model.opt.momentum=0.5", flags=["--cfg", "job"], multirun=False)
    assert r.code == 0 and "momentum: 0.5" in r.out, r.err


@pytest.mark.parametrize(
    "args, expected",
    [
        (("model=mlp", "+model.channels=3"), "model.mlp.channels: Extra inputs are not permitted (got 3); 'channels' is a field of model=cnn: select it with model=cnn"),
        (("model=cnn", "+model.opt.momentum=3"), "model.cnn.opt.adam.momentum: Extra inputs are not permitted (got 3); 'momentum' is a field of model/opt=sgd"),
    ],
)
def test_an_added_field_of_another_member_names_it_too(ctx: Ctx, args: tuple[str, ...], expected: str) -> None:
    """With the '+' Hydra's advice asks for, pydantic's "Extra inputs" names the member too."""
    r = ctx.run(NOYAML, *args, multirun=False)
    assert r.code == 1 and expected in r.err, r.err
    r = ctx.run(NOYAML, "model=mlp", "+model.chanels=3", multirun=False)  # no member has it: pydantic's message only
    assert r.code == 1 and "model.mlp.chanels: Extra inputs are not permitted (got 3)\n" in r.err, r.err
    ctx.assert_nothing_ran()


THREE = '''
import typing as tp, pydantic, exca_hydra
from exca_hydra import TaskInfra

class MLP(pydantic.BaseModel):
    name: tp.Literal["mlp"] = "mlp"

class CNN(pydantic.BaseModel):
    name: tp.Literal["cnn"] = "cnn"
    channels: int = 8

class CNN2(pydantic.BaseModel):
    name: tp.Literal["cnn2"] = "cnn2"
    channels: int = 16

class Exp(pydantic.BaseModel):
    model: MLP | CNN | CNN2 = pydantic.Field(default_factory=MLP, discriminator="name")
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> int:
        return getattr(self.model, "channels", 0)

@exca_hydra.main(version_base="1.3")
def main(exp: Exp) -> int:
    return exp.train()

if __name__ == "__main__":
    main()
'''


def test_a_field_every_swept_option_has_but_not_the_default_says_to_use_plus_plus(ctx: Ctx) -> None:
    """Found by the red team (F5): `-m model=cnn,cnn2 model.channels=5` (both have the field, the
    default mlp does not) got Hydra's "use +model.channels", then with + "remove +": Hydra composes
    the sweep once with the defaults first. One message now names the form that works, ++."""
    app = ctx.tmp / "three_app.py"
    app.write_text(THREE)
    r = ctx.run(app, "model=cnn,cnn2", "model.channels=5", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 1 and "every option swept (model=cnn,cnn2) has it" in r.err and "++model.channels=5" in r.err, r.err
    r = ctx.run(app, "model=cnn,cnn2", "++model.channels=5", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")
    assert r.code == 0 and "2 completed" in r.out + r.err, r.err
    r = ctx.run(app, "model=cnn", "model.channels=5", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}")  # not swept: as is
    assert r.code == 0, r.err
