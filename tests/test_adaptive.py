"""Adaptive sweepers (issue 15), with the real hydra-optuna-sweeper and the exca_local launcher:
an invalid proposed config is a failed trial (field and value in its error), the other jobs of
its batch run and the study goes on; under Hydra's basic sweeper and the exca sweeper one invalid
job still means nothing is launched.  A re-run reads the computed trials from the cache and its
summary says "cached".

The app (tests/apps/adaptive) has ``x: float = Field(ge=0)``; the search space is interval(-1, 1).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_launcher import APPS, Ctx

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

APP = APPS / "adaptive" / "app.py"
TRIALS = 6


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def _study(ctx: Ctx) -> tuple[int, str]:
    r = ctx.run(
        APP, "hydra/sweeper=optuna", "x=interval(-1,1)", f"hydra.sweeper.n_trials={TRIALS}", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0", "hydra.sweeper.max_failure_rate=1.0", f"hydra.launcher.folder={ctx.cache}",
    )  # fmt: skip
    return r.code, r.out + r.err


def _rows(out: str) -> dict[int, list[str]]:
    """Every launch's summary rows, by job number: [status, time, uid, overrides, ...]."""
    return {int(m[1]): m[2].split() for m in re.finditer(r"^\s+(\d+)\s+((?:COMPLETED|FAILED)\s.*)$", out, re.M)}


def test_an_invalid_trial_fails_alone_and_the_study_completes(ctx: Ctx) -> None:
    code, out = _study(ctx)
    assert code == 0, out
    assert (ctx.sweep_dir / "optimization_results.yaml").exists()  # the study finished
    rows = _rows(out)
    assert sorted(rows) == list(range(TRIALS))
    invalid = [num for num, row in rows.items() if row[0] == "FAILED"]
    assert invalid, out  # seed 0 proposes a negative x
    for num in invalid:
        x = rows[num][3]
        assert x.startswith("x=-")
        assert f"Failed experiment: Invalid config of job #{num} ({x})" in out, out
        assert f"x: Input should be greater than or equal to 0 (got {x[2:]})" in out
    # every valid trial ran, those batched with an invalid one included
    computed = sorted(ctx.lines())
    assert computed == sorted(row[3] for row in rows.values() if row[0] == "COMPLETED")
    assert len(computed) == TRIALS - len(invalid)
    assert not any("nothing was launched" in line for line in out.splitlines())

    # the same study again: every valid trial is read from the cache, and said so
    code, again = _study(ctx)
    assert code == 0, again
    assert sorted(ctx.lines()) == computed  # nothing computed
    rows = _rows(again)
    assert {num: row[:2] for num, row in rows.items() if row[0] == "COMPLETED"} == {
        num: ["COMPLETED", "cached"] for num in rows if num not in invalid
    }


@pytest.mark.parametrize("sweeper", [(), ("hydra/sweeper=exca",)])
def test_basic_and_exca_sweepers_still_launch_nothing(ctx: Ctx, sweeper: tuple[str, ...]) -> None:
    r = ctx.run(APP, *sweeper, "x=-0.5,0.5", f"hydra.launcher.folder={ctx.cache}")
    assert r.code == 1
    assert "1 of 2 job(s) have an invalid config; nothing was launched." in r.err, r.err
    assert re.search(r"#0 : x=-0.5\n\s+x: Input should be greater than or equal to 0 \(got -0.5\)", r.err), r.err
    ctx.assert_nothing_ran()
