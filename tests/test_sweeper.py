"""The exca sweeper (issue 4): re-running a sweep runs only what is missing, with stable numbers.

What ran is counted by side effects: each job appends "<job.num> <model class> lr=<lr>" to
$EXCA_TEST_LOG, and a job that runs gets an output folder in the sweep dir.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_launcher import APPS, TRAINER, Ctx, Trainer

APP = TRAINER / "app.py"
METHOD_APP = TRAINER / "method_app.py"
SWEEP = ("hydra/sweeper=exca", "model=conv,transformer", "lr=0.1,0.2,0.3")


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path)


def _entries(ctx: Ctx) -> dict[str, Path]:
    return {p.name: p for p in ctx.cache.glob("*/*") if (p / "uid.yaml").exists()}


def test_rerun_runs_only_the_missing_jobs_with_stable_numbers(ctx: Ctx) -> None:
    first = ctx.run(APP, *SWEEP)
    assert first.code == 0, first.err
    lines = ctx.lines()
    assert sorted(int(line.split()[0]) for line in lines) == list(range(6))
    by_num = {int(line.split()[0]): line for line in lines}
    # delete the results of jobs #1 (conv lr=0.2) and #4 (transformer lr=0.2)
    removed = [p for p in _entries(ctx).values() if "lr=0.2" in p.name]
    assert len(removed) == 2
    for path in removed:
        shutil.rmtree(path)
    second = ctx.run(APP, *SWEEP)
    assert second.code == 0, second.err
    new = ctx.lines()[len(lines) :]
    assert sorted(new) == sorted([by_num[1], by_num[4]])  # same numbers, same configs
    assert ctx.job_dirs() == ["1", "4"]  # only those two ran (got an output folder)
    assert "4 cached" in second.err + second.out
    # the cached ones get their folder too (issue 22): .hydra/ and a pointer to their entry
    assert ctx.cached_dirs() == ["0", "2", "3", "5"]
    for num in ctx.cached_dirs():
        pointer = (ctx.sweep_dir / num / ".hydra" / "cache_entry.txt").read_text().strip()
        assert (ctx.sweep_dir / num / ".hydra" / "config.yaml").exists() and Path(pointer, "result.pkl").exists()
        # the same config.yaml as when it ran (written from the config composed at planning)
        ran = ctx.tmp / "sweep1" / num / ".hydra" / "config.yaml"
        assert (ctx.sweep_dir / num / ".hydra" / "config.yaml").read_text() == ran.read_text(), num
    third = ctx.run(APP, *SWEEP)
    assert third.code == 0 and ctx.lines()[len(lines) + 2 :] == [] and ctx.job_dirs() == []


def test_dry_run_lists_every_job_and_submits_nothing(ctx: Ctx) -> None:
    assert ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1").code == 0
    before = ctx.lines()
    dry = ctx.run(APP, *SWEEP, "hydra.sweeper.dry_run=true")
    assert dry.code == 0, dry.err
    assert ctx.lines() == before and ctx.job_dirs() == []
    rows = [line for line in dry.out.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 6
    assert rows[0].split()[1] == "cached" and "lr=0.1" in rows[0]
    assert all(row.split()[1] == "missing" for row in rows[1:])
    assert len(_entries(ctx)) == 1  # a dry run writes nothing to the cache


def test_modes_cached_retry_force_read_only(ctx: Ctx) -> None:
    sweep = ("hydra/sweeper=exca", "model=conv", "lr=0.1,0.5")  # lr=0.5 raises
    first = ctx.run(APP, *sweep)
    assert first.code != 0 and "lr=0.5 diverges" in first.err
    assert len(ctx.lines()) == 1
    cached = ctx.run(APP, *sweep)  # the recorded failure is returned, nothing runs
    assert cached.code != 0 and "lr=0.5 diverges" in cached.err
    # the plan line counts and names it, and says how to run it again (issue 22)
    assert "2 job(s): 1 cached, 0 running, 0 to run (mode=cached), 1 failed last time" in cached.out + cached.err
    assert "#1 model=conv lr=0.5" in cached.out + cached.err and "hydra.sweeper.mode=retry runs them again" in cached.out + cached.err
    assert ctx.job_dirs() == [] and len(ctx.lines()) == 1
    retry = ctx.run(APP, *sweep, "hydra.sweeper.mode=retry")  # only the failed job runs again
    assert retry.code != 0 and ctx.job_dirs() == ["1"] and len(ctx.lines()) == 1
    force = ctx.run(APP, *sweep, "hydra.sweeper.mode=force")  # everything runs again
    assert force.code != 0 and ctx.job_dirs() == ["0", "1"] and len(ctx.lines()) == 2
    readonly = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.3", "hydra.sweeper.mode=read-only")
    assert readonly.code != 0 and "not computed" in readonly.err
    assert ctx.job_dirs() == [] and len(ctx.lines()) == 2
    ok = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1", "hydra.sweeper.mode=read-only")
    assert ok.code == 0 and len(ctx.lines()) == 2


def _summary_rows(text: str) -> dict[int, list[str]]:
    """Rows of the last sweep summary in ``text``, by job number: [status, time, uid, ...]."""
    table = text[text.rindex("Sweep summary:") :].split("\nresults: ")[0].splitlines()[2:]
    return {int(row.split()[0]): row.split()[1:] for row in table}


def test_summary_covers_the_whole_sweep_and_failures_point_at_the_user_code(ctx: Ctx) -> None:
    assert ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.5").code != 0
    run = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.5,0.2")  # runs #2 only
    assert run.code == 1 and len(ctx.lines()) == 2
    assert "Sweep summary: 3 job(s): 1 completed, 1 cached, 1 failed" in run.out, run.out
    rows = _summary_rows(run.out)
    entries = _entries(ctx)
    assert {num: row[:2] for num, row in rows.items()} == {
        0: ["COMPLETED", "cached"], 1: ["FAILED", "cached"], 2: ["COMPLETED", rows[2][1]]
    }
    assert re.fullmatch(r"\d+\.\ds", rows[2][1])  # a duration: it ran in this sweep
    assert all(row[2] in entries for row in rows.values())  # whole uids: the folders on disk
    assert f"results: {ctx.cache / 'app.main,0'}/<uid>" in run.out
    # the failure: its overrides, its error, its traceback file, then the task's own frames only
    report = run.err[run.err.index("1 of 3 job(s) failed") :]
    error_txt = next(p for name, p in entries.items() if "lr=0.5" in name) / "error.txt"
    assert "#1 : model=conv lr=0.5\n      ValueError: lr=0.5 diverges" in report
    assert f"traceback: {error_txt}" in report
    assert "launcher_models.py" in report and "raise ValueError" in report
    assert "exca_hydra" not in error_txt.read_text() and "exca_hydra/" not in report
    assert "hydra.sweeper.mode=retry" in report


def test_summary_keeps_the_hash_of_a_long_uid() -> None:
    from exca_hydra.bridge.launch.report import _short_uid

    uid = "model.embeddings=256," * 10 + "optimizer=SGD-067ff636618b3d6b"
    short = _short_uid(uid, 44)
    assert len(short) == 44 and short.endswith("…-067ff636618b3d6b") and short.startswith("model.emb")
    assert _short_uid("lr=0.2-725f5427fa588369") == "lr=0.2-725f5427fa588369" and _short_uid(None) == "-"


def test_retry_of_scattered_failures_is_one_launch_with_the_old_numbers(ctx: Ctx) -> None:
    sweep = ("hydra/sweeper=exca", "model=conv,transformer", "lr=0.5,0.1")  # jobs 0 and 2 fail
    first = ctx.run(APP, *sweep)
    assert first.code != 0 and len(ctx.lines()) == 2
    retry = ctx.run(APP, *sweep, "hydra.sweeper.mode=retry")
    out = retry.out + retry.err
    assert ctx.job_dirs() == ["0", "2"] and len(ctx.lines()) == 2  # the failed ones, nothing else
    # one launch (one Slurm array on exca_slurm), not one per contiguous run of failed jobs
    assert re.findall(r"launching (\d+) validated job", out) == ["2"], out
    assert "Exca sweeper: 4 job(s): 2 cached, 0 running, 2 to run (mode=retry)" in out, out


def test_batches_keep_numbers_and_validate_the_whole_sweep_first(ctx: Ctx) -> None:
    bad = ctx.run(APP, "hydra/sweeper=exca", "hydra.sweeper.max_batch_size=2", "model=conv", "lr=0.1,0.2,abc")
    assert bad.code != 0 and "#2" in bad.err and "lr" in bad.err
    ctx.assert_nothing_ran()  # the invalid job is in the 2nd batch: the 1st batch did not run either
    good = ctx.run(APP, "hydra/sweeper=exca", "hydra.sweeper.max_batch_size=2", "model=conv", "lr=0.1,0.2,0.3")
    assert good.code == 0, good.err
    assert sorted(line.split()[0] for line in ctx.lines()) == ["0", "1", "2"]


def test_python_result_is_a_cache_hit_for_the_cli(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCA_TEST_LOG", str(ctx.log))
    trainer = Trainer(model={"name": "conv"}, lr=0.3, infra={"folder": ctx.cache})
    assert trainer.run().endswith("lr=0.3")
    assert len(ctx.lines()) == 1
    out = ctx.run(METHOD_APP, "hydra/sweeper=exca", "model=conv", "lr=0.3,0.4")
    assert out.code == 0, out.err
    new = ctx.lines()[1:]
    assert len(new) == 1 and new[0].endswith("lr=0.4")  # 0.3 came from the Python-computed entry
    again = Trainer(model={"name": "conv"}, lr=0.4, infra={"folder": ctx.cache})
    assert again.infra.status() == "completed" and again.run() == new[0]  # and the other way round


def test_running_job_of_an_earlier_invocation_is_waited_for_not_resubmitted(ctx: Ctx) -> None:
    trainer = Trainer(model={"name": "conv"}, lr=0.3, infra={"folder": ctx.cache})
    entry = trainer.infra.uid_folder(create=True)
    assert entry is not None
    (entry / "uid.yaml").write_text(json.dumps(trainer.infra.config(uid=True)))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    (entry / "job.json").write_text(json.dumps({"backend": "LocalJob", "job_id": str(sleeper.pid), "folder": str(ctx.tmp), "stderr": "-"}))

    def finish() -> None:  # the "earlier" job finishes while the sweeper waits for it
        time.sleep(1.5)
        (entry / "result.pkl").write_bytes(pickle.dumps("computed earlier"))

    thread = threading.Thread(target=finish)
    thread.start()
    try:
        out = ctx.run(METHOD_APP, "hydra/sweeper=exca", "model=conv", "lr=0.3,0.4")
    finally:
        thread.join()
        sleeper.kill()
        sleeper.wait()
    assert out.code == 0, out.err
    assert "1 running" in out.err + out.out
    assert [line.split()[-1] for line in ctx.lines()] == ["lr=0.4"]  # 0.3 was not run again
    assert ctx.job_dirs() == ["1"]


def test_an_edited_cache_entry_stops_the_sweep_before_launch(ctx: Ctx) -> None:
    assert ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.2").code == 0
    entry = next(p for p in _entries(ctx).values() if "lr=0.2" in p.name)
    config = (entry / "config.yaml").read_text()
    (entry / "config.yaml").write_text(config.replace("layers: 2", "layers: 5"))
    out = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.2,0.3")
    assert out.code != 0 and "#1" in out.err and "model.layers (cached with 5, now 2)" in out.err
    assert ctx.job_dirs() == [] and len(ctx.lines()) == 2  # lr=0.3 did not run either
    forced = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.2", "hydra.sweeper.mode=force")
    assert forced.code == 0 and len(ctx.lines()) == 3
    assert "layers: 5" not in next(p for p in _entries(ctx).values() if "lr=0.2" in p.name).joinpath("config.yaml").read_text()


def test_works_with_hydra_submitit_launcher(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    # submitit's job processes unpickle the task: they need the app's folder on their path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TRAINER), os.environ.get("PYTHONPATH", "")]))
    common = ("hydra/sweeper=exca", "hydra/launcher=submitit_local", "model=conv")
    first = ctx.run(APP, *common, "lr=0.1,0.2")
    assert first.code == 0, first.err
    assert sorted(line.split()[-1] for line in ctx.lines()) == ["lr=0.1", "lr=0.2"]
    again = ctx.run(APP, *common, "lr=0.1,0.2,0.3")
    assert again.code == 0, again.err
    assert [line.split()[-1] for line in ctx.lines()[2:]] == ["lr=0.3"]  # only the new job ran
    assert "2 cached" in again.err + again.out


def test_single_runs_and_the_basic_launcher_fill_the_same_cache(ctx: Ctx) -> None:
    assert ctx.run(APP, "model=conv", "lr=0.1", multirun=False).code == 0
    assert ctx.run(APP, "model=conv", "lr=0.1", multirun=False).code == 0  # read from the cache
    assert len(ctx.lines()) == 1
    basic = ctx.run(APP, "hydra/sweeper=exca", "hydra/launcher=basic", "model=conv", "lr=0.1,0.2")
    assert basic.code == 0, basic.err
    assert "1 cached" in basic.err + basic.out and [line.split()[-1] for line in ctx.lines()] == ["lr=0.1", "lr=0.2"]


def test_the_summary_reads_outcomes_and_unpickles_nothing(ctx: Ctx) -> None:
    """Issue 20: the end-of-sweep summary shows each result as outcome.json previews it; a
    cached re-run loads no result whose file has the size outcome.json recorded (a file of the
    same size that would not load goes unread; a truncated one is still caught: test_cache_trust)."""
    first = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.2")
    assert first.code == 0, first.err
    for entry in _entries(ctx).values():
        size = (entry / "result.pkl").stat().st_size
        (entry / "result.pkl").write_bytes(b"x" * size)  # loading it would fail its job
    again = ctx.run(APP, "hydra/sweeper=exca", "model=conv", "lr=0.1,0.2")
    assert again.code == 0, again.err
    out = again.out + again.err
    assert "2 cached" in out and "0 ConvCfg lr=0.1" in out and "1 ConvCfg lr=0.2" in out, out
    assert ctx.cached_dirs() == ["0", "1"]


def test_fail_fast_stops_the_sweep_at_the_first_failure(ctx: Ctx) -> None:
    """Issue 22 (hydra#2824): hydra.launcher.fail_fast=true stops the sweep when a job fails:
    the others are stopped, nothing recorded for them, and a later run computes them."""
    sweep = ("hydra/sweeper=exca", "model=conv", "lr=0.5,0.1,0.2,0.3", "hydra.launcher.array_parallelism=1")
    r = ctx.run(APP, *sweep, "hydra.launcher.fail_fast=true")
    assert r.code != 0 and "fail_fast: job #0" in r.err and "3 other job(s) stopped" in r.err, r.err
    assert ctx.lines() == []  # lr=0.5 failed first: nothing else ran
    outcomes = sorted(p.parent.name.split("-")[0] for p in ctx.cache.glob("*/*/outcome.json"))
    assert len(outcomes) == 1, outcomes  # the failed job alone has an outcome
    r = ctx.run(APP, *sweep)  # without it: the others run, the failure is reported
    assert r.code != 0 and len(ctx.lines()) == 3, r.err


def test_the_summary_names_the_best_job(ctx: Ctx) -> None:
    """Issue 24: numbers as results: the summary names the highest and the lowest (which is better
    is not guessed); hydra.sweeper.best=min:result names the best; a malformed one is refused."""
    plain = APPS / "plain" / "app.py"
    r = ctx.run(plain, "x=1,3,2", "hydra/launcher=exca_local", "hydra/sweeper=exca")
    assert r.code == 0 and "highest result: #1 (x=3) 30; lowest: #0 (x=1) 10" in r.out, r.out
    r = ctx.run(plain, "x=1,3,2", "hydra/launcher=exca_local", "hydra/sweeper=exca", "hydra.sweeper.best=max:result")
    assert r.code == 0 and "best (max:result): #1 (x=3) result=30" in r.out, r.out
    r = ctx.run(plain, "x=1,2", "hydra/launcher=exca_local", "hydra/sweeper=exca", "hydra.sweeper.best=result")
    assert r.code == 1 and "hydra.sweeper.best" in r.err and "max|min" in r.err, r.err


def test_a_best_key_no_job_has_is_said(ctx: Ctx) -> None:
    """Found by the red team (redteam-look F5): hydra.sweeper.best=max:result.<typo> gave no line
    at all; it now names the result columns the jobs have."""
    app = APPS / "figures" / "app.py"
    r = ctx.run(app, "model=a", "lr=0.1,0.01", "infra.folder=${oc.env:EXCA_HYDRA_CACHE}", "hydra.sweeper.best=max:result.accuracy")
    assert r.code == 0, r.err
    assert "best (max:result.accuracy): no completed job has a number at result.accuracy; their result columns: result.acc, result.loss" in r.out + r.err, r.out + r.err


def test_a_nan_result_does_not_hide_the_best_line() -> None:
    """Found by the red team (redteam-look F9): results 5.0 and NaN: no highest/lowest line at all."""
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus

    from exca_hydra.bridge.launch.report import best_line

    jobs = [SimpleNamespace(num=i, shown_overrides=f"x={i}", entry=None,
                            result=JobReturn(status=JobStatus.COMPLETED, _return_value=v)) for i, v in enumerate([5.0, float("nan"), 2.0])]  # fmt: skip
    line = best_line(jobs, {}, None)  # type: ignore[arg-type]
    assert line == "highest result: #0 (x=0) 5; lowest: #2 (x=2) 2", line
