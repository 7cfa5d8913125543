"""Issue 22: a layer that selects another member of a nested union drops the other member's
generated defaults (tests/apps/switch: CNN.opt is Adam by default, conf/model/cnn.yaml sets
``opt: {type: sgd, momentum: 0.9}``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_launcher import APPS, Ctx

SWITCH = APPS / "switch" / "app.py"


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def test_yaml_option_switching_a_nested_union_member_composes(ctx: Ctx) -> None:
    r = ctx.run(SWITCH, "model=cnn,mlp")
    assert r.code == 0, r.out + r.err
    got = sorted((json.loads(line) for line in ctx.lines()), key=lambda m: m["type"])
    # SGD's own defaults (lr=0.1) under the file's values; nothing of Adam's (beta, lr=1e-3)
    assert got == [{"type": "cnn", "channels": 8, "opt": {"type": "sgd", "lr": 0.1, "momentum": 0.9}}, {"type": "mlp", "hidden": 32}]
    r = ctx.run(SWITCH, "model=cnn,mlp")  # the same configs: cached
    assert r.code == 0 and "2 cached, 0 running, 0 to run" in r.out + r.err, r.out + r.err
    assert len(ctx.lines()) == 2


@pytest.mark.parametrize("override", ["model.opt.type=sgd", "model.opt={type:sgd,momentum:0.5}"])
def test_an_override_setting_another_member_names_the_group(ctx: Ctx, override: str) -> None:
    """Applied after the option is merged, the tag would keep Adam's lr=1e-3 under SGD (a wrong
    value) or fail on beta: refused before anything runs, with the group that selects SGD."""
    r = ctx.run(SWITCH, "model=cnn", "model/opt=adam", override)
    assert r.code == 1 and "Select the member with the group: model/opt=sgd" in r.err, r.out + r.err
    ctx.assert_nothing_ran()
    r = ctx.run(SWITCH, "model=cnn", "model/opt=sgd", "model.opt.momentum=0.5")
    assert r.code == 0, r.out + r.err
    assert json.loads(ctx.lines()[-1])["opt"] == {"type": "sgd", "lr": 0.1, "momentum": 0.5}
