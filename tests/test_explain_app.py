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
    assert "seed: wanted \"<default>\", cached 7" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache)]) == 0  # what the app runs by default
    assert "Cached:" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=small"]) == 0
    assert "model.name=mlp" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=cnn_big"]) == 1  # the YAML's 64 channels
    assert "model.channels: wanted 64, cached 16" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "seed=8"]) == 1
    assert "seed: wanted 8, cached 7" in capsys.readouterr().out
    assert cli(["explain", "--app", str(OVERLAY), str(ctx.cache), "model=cnnn"]) == 2  # the app's own message
    assert "Did you mean 'cnn'" in capsys.readouterr().err
