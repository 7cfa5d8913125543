"""``exca-hydra explain --app app.py``: what the app composes (its YAML, its generated defaults)
is compared with the cache, so a config the app reports as cached is shown cached (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exca_hydra.cli import main as cli
from test_launcher import APPS, Ctx

OVERLAY = APPS / "overlay" / "app.py"  # conf/config.yaml: seed 7, model cnn; conf/model/cnn.yaml: channels 16


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def test_explain_composes_the_apps_yaml(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    r = ctx.run(OVERLAY, "model=cnn,small")
    assert r.code == 0, r.err
    assert cli(["explain", str(ctx.cache)]) == 1  # without the app: the YAML's seed 7 and 16 channels look changed
    out = capsys.readouterr().out
    assert "seed: wanted \"<default>\", cached 7" in out and "explain --app app.py" in out, out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache)]) == 0  # what the app runs by default
    assert "Cached:" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=small"]) == 0
    assert "model.name=mlp" in capsys.readouterr().out
    assert cli(["explain", str(ctx.cache), "--app", str(OVERLAY), "model=small"]) == 0  # --app anywhere
    assert "model.name=mlp" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=cnn_big"]) == 1  # the YAML's 64 channels
    assert "model.channels: wanted 64, cached 16" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "seed=8"]) == 1
    assert "seed: wanted 8, cached 7" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=cnnn"]) == 2  # the app's own message
    assert "Did you mean 'cnn'" in capsys.readouterr().err
    # a model's infra resources and folder are outside its uid: still the same entry
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "+infra.gpus_per_node=2", "infra.folder=/elsewhere"]) == 0
    assert "Cached:" in capsys.readouterr().out


def test_explain_composes_a_hydra_zen_app(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain (hydra-zen) app: every key of its config is in the uid, the added ones too."""
    app = APPS / "zen" / "zen_app.py"
    r = ctx.run(app, "lr=0.1,0.2", "hydra/launcher=exca_local", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 0, r.err
    assert cli(["explain", "--app", str(app), str(ctx.cache), "lr=0.2"]) == 0
    assert "Cached:" in capsys.readouterr().out
    assert cli(["explain", "--app", str(app), str(ctx.cache), "lr=0.2", "+extra=1"]) == 1
    assert 'extra: wanted 1, cached "<absent>"' in capsys.readouterr().out
