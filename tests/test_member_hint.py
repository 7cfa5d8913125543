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
