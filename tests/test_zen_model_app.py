"""A hydra-zen app whose config builds a pydantic model with a TaskInfra (``builds(Trainer)``,
the model in a module; issue 22): under exca_local its result caches under the task's name,
and the model's own ``@infra.apply`` method caches in its ``infra.folder``."""

from __future__ import annotations

from pathlib import Path

from test_launcher import APPS, Ctx

APP = APPS / "zenmodel" / "app.py"


def test_a_zen_app_building_a_pydantic_model(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    args = ("trainer.lr=0.1,0.2", f"hydra.launcher.folder={ctx.cache}", "hydra/launcher=exca_local")
    for _ in range(2):
        r = ctx.run(APP, *args)
        assert r.code == 0, r.err
        assert sorted(ctx.lines()) == ["train lr=0.1 epochs=2", "train lr=0.2 epochs=2"]  # the 2nd run: cached
    assert [p.name for p in ctx.cache.iterdir()] == ["app.task,0"] and len(list((ctx.cache / "app.task,0").iterdir())) == 2
    r = ctx.run(APP, "trainer.lr=0.1,0.4", f"hydra.sweeper.folder={ctx.cache}", "hydra/launcher=exca_local", "hydra/sweeper=exca")
    assert r.code == 0 and "1 cached, 0 running, 1 to run" in r.out + r.err, r.out + r.err
    model = ctx.tmp / "model"
    for _ in range(2):  # the model's method caches itself, in its own infra folder
        r = ctx.run(APP, "trainer.lr=0.5", f"trainer.infra.folder={model}", "hydra/launcher=exca_local")
        assert r.code == 0, r.err
    assert [p.name for p in model.iterdir()] == ["zen_trainer.Trainer.train,0"]
    assert ctx.lines().count("train lr=0.5 epochs=2") == 1
