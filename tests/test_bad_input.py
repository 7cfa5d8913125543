"""Issue 7, "Bad input": a corpus of invalid command lines, kept as a table.

Each case runs the trainer test app (tests/apps/trainer/) as a multirun, with Hydra's basic sweeper
and with ``hydra/sweeper=exca``, against a copy of a pre-populated cache (completed and failed
entries). Every case must: exit non-zero; print ONE clear message that names the field (and the
job's number and overrides when a job is concerned); print no Python traceback (unless
HYDRA_FULL_ERROR=1); run nothing (no $EXCA_TEST_LOG line, no job output folder); leave every file
and folder of the cache exactly as it was (list, size, mode and mtime).

Two cases are not command lines: a task whose return value cannot be pickled (tests/apps/bad_input/,
the job fails with a clear message and no result is cached) and a task function without a model
annotation (a TypeError when ``exca_hydra.main`` decorates it).
"""

from __future__ import annotations

import re
import shutil
import typing as tp
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import DictConfig

from test_launcher import APPS, TRAINER, Ctx, Trainer, entry

APP = TRAINER / "app.py"
UNPICKLABLE_APP = APPS / "bad_input" / "app.py"
SWEEPERS = {"basic": (), "exca": ("hydra/sweeper=exca",)}
INVALID = "have an invalid config; nothing was launched."


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expected: tuple[str, ...]  # substrings of stderr
    headline: str  # the one message: exactly once in stderr
    absent: tuple[str, ...] = ()  # e.g. the valid jobs, which must not be reported
    sweepers: tuple[str, ...] = ("basic", "exca")


CASES = [
    # unknown key
    Case("unknown_key", ("model=conv,transformer", "+model.foo=1"),
         ("2 of 2 job(s)", "#0 : model=conv +model.foo=1", "model.conv.foo: Extra inputs are not permitted (got 1)",
          "#1 : model=transformer +model.foo=1", "model.transformer.foo: Extra inputs are not permitted"), INVALID),
    Case("unknown_top_level_key", ("lr=0.1,0.2", "+optimiser=sgd"),
         ("2 of 2 job(s)", "#1 : lr=0.2 +optimiser=sgd", "optimiser: Extra inputs are not permitted (got 'sgd')"), INVALID),
    # wrong type
    Case("wrong_type", ("model=conv,transformer", "lr=0.1,abc"),
         ("2 of 4 job(s)", "#1 : model=conv lr=abc", "#3 : model=transformer lr=abc",
          "lr: Input should be a valid number", "(got 'abc')"), INVALID, absent=("#0 :", "#2 :")),
    Case("wrong_type_nested", ("model=conv,transformer", "model.layers=two"),
         ("2 of 2 job(s)", "#0 : model=conv model.layers=two", "model.conv.layers: Input should be a valid integer",
          "(got 'two')"), INVALID),
    # wrong discriminator value: a group option whose tag is unknown, and an override of the tag
    Case("bad_tag_in_group_file", ("model=conv,badtag",),
         ("1 of 2 job(s)", "#1 : model=badtag", "model: Input tag 'foo' found using 'name' does not match any of "
          "the expected tags: 'conv', 'transformer'"), INVALID, absent=("#0 :",)),
    Case("bad_tag_override", ("model=conv,transformer", "model.name=foo"),
         ("2 of 2 job(s)", "#0 : model=conv model.name=foo", "#1 : model=transformer model.name=foo",
          "model: Input tag 'foo'"), INVALID),
    # missing required value, broken interpolation
    Case("missing_value", ("model=conv,missing",),
         ("1 of 2 job(s)", "#1 : model=missing", "model.layers: MissingMandatoryValue"), INVALID, absent=("#0 :",)),
    Case("broken_interpolation", ("model=transformer,badref",),
         ("1 of 2 job(s)", "#1 : model=badref", "model.embeddings: InterpolationKeyError",
          "Interpolation key 'nope' not found"), INVALID, absent=("#0 :",)),
    # unknown config group option (Hydra's own message, before any job exists)
    Case("unknown_group_option", ("model=nope",),
         ("Could not find 'model/nope'", "Available options in 'model'", "transformer"), "Could not find"),
    Case("unknown_group_option_in_sweep", ("model=conv,nope",),
         ("Could not find 'model/nope'", "Available options in 'model'"), "Could not find"),
    # bad launcher parameter: every job cached (the exca sweeper never calls the launcher then),
    # and with jobs to run
    Case("launcher_unknown_key", ("model=conv,transformer", "+hydra.launcher.foo=1"),
         ("hydra.launcher.foo: Extra inputs are not permitted (got 1)",), "Invalid launcher parameters"),
    Case("launcher_bad_value_all_cached", ("model=conv,transformer", "hydra.launcher.array_parallelism=abc"),
         ("hydra.launcher.array_parallelism: Input should be a valid integer", "(got 'abc')"),
         "Invalid launcher parameters"),
    Case("launcher_bad_value", ("model=conv,transformer", "lr=0.1,0.3", "hydra.launcher.array_parallelism=abc"),
         ("hydra.launcher.array_parallelism: Input should be a valid integer",), "Invalid launcher parameters"),
    Case("sweeper_bad_value", ("model=conv,transformer", "hydra.sweeper.mode=bogus"),
         ("hydra.sweeper.mode: Input should be 'cached', 'retry', 'force' or 'read-only' (got 'bogus')",),
         "Invalid sweeper parameters", sweepers=("exca",)),
    # out-of-range values (issue 13): named before anything is written or submitted
    Case("launcher_negative_parallelism", ("model=conv,transformer", "lr=0.1,0.3", "hydra.launcher.array_parallelism=-1"),
         ("hydra.launcher.array_parallelism: Input should be greater than or equal to 1 (got -1)",),
         "Invalid launcher parameters"),
    Case("sweeper_zero_batch_size", ("model=conv,transformer", "lr=0.1,0.3", "hydra.sweeper.max_batch_size=0"),
         ("hydra.sweeper.max_batch_size: Input should be greater than or equal to 1 (got 0)",),
         "Invalid sweeper parameters", sweepers=("exca",)),
    Case("sweeper_negative_batch_size", ("model=conv,transformer", "lr=0.1,0.3", "hydra.sweeper.max_batch_size=-1"),
         ("hydra.sweeper.max_batch_size: Input should be greater than or equal to 1 (got -1)",),
         "Invalid sweeper parameters", sweepers=("exca",)),
    # Slurm-only parameters, checked before Slurm is asked anything (every job is cached here)
    Case("slurm_negative_max_array_size", ("model=conv,transformer", "hydra/launcher=exca_slurm", "hydra.launcher.max_array_size=-1"),
         ("hydra.launcher.max_array_size: Input should be greater than or equal to 1 (got -1)",),
         "Invalid launcher parameters"),
    Case("slurm_zero_jobs_per_task", ("model=conv,transformer", "hydra/launcher=exca_slurm", "hydra.launcher.jobs_per_task=0"),
         ("hydra.launcher.jobs_per_task: Input should be greater than or equal to 1 (got 0)",),
         "Invalid launcher parameters"),
    Case("slurm_negative_cpus", ("model=conv,transformer", "hydra/launcher=exca_slurm", "hydra.launcher.cpus_per_task=-2"),
         ("hydra.launcher.cpus_per_task: Input should be greater than or equal to 1 (got -2)",),
         "Invalid launcher parameters"),
    # bad sweep syntax: the message names the override (Hydra alone does not for these two)
    Case("sweep_syntax_range", ("model=conv,transformer", "lr=range("),
         ("Error parsing override 'lr=range(' (key 'lr')", "no viable alternative at input 'range('"),
         "Error parsing override"),
    Case("sweep_syntax_list", ("lr=[0.1",),
         ("Error parsing override 'lr=[0.1' (key 'lr')", "no viable alternative"), "Error parsing override"),
    Case("sweep_syntax_empty_choice", ("lr=choice()",),
         ("Error parsing override 'lr=choice()'", "empty choice is not legal"), "Error parsing override"),
]  # fmt: skip

PARAMS = [
    pytest.param(case, sweeper, id=f"{case.id}-{sweeper}") for case in CASES for sweeper in case.sweepers
]


# ----- a pre-populated cache, copied for each test -----
@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model=conv,transformer x lr=0.1 (completed), 0.5 (failed: the task raises)."""
    ctx = Ctx(tmp_path_factory.mktemp("populated"))
    run = ctx.run(APP, "model=conv,transformer", "lr=0.1,0.5")
    assert run.code != 0 and "lr=0.5 diverges" in run.err  # the two lr=0.5 jobs fail, on purpose
    for model in ("conv", "transformer"):
        assert (entry(ctx.cache, "app.main,0", model={"name": model}, lr=0.1) / "result.pkl").exists()
        assert (entry(ctx.cache, "app.main,0", model={"name": model}, lr=0.5) / "error.pkl").exists()
    return ctx.cache


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``folder`` (itself included): size, mode, mtime."""
    out = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture
def ctx(tmp_path: Path, populated: Path) -> Ctx:
    ctx = Ctx(tmp_path)
    shutil.copytree(populated, ctx.cache)
    return ctx


# ----- the table -----
@pytest.mark.parametrize("case, sweeper", PARAMS)
def test_bad_input(ctx: Ctx, case: Case, sweeper: str) -> None:
    before = snapshot(ctx.cache)
    assert len(before) > 6  # root, method folder, 4 entries and their files
    r = ctx.run(APP, *SWEEPERS[sweeper], *case.args)
    assert r.code != 0, r.out + r.err
    assert r.err.count(case.headline) == 1, r.err  # one message...
    for text in case.expected:  # ...naming the job's overrides and the field
        assert text in r.err, f"{text!r} not in:\n{r.err}"
    for text in case.absent:
        assert text not in r.err, r.err
    assert "Traceback" not in r.err + r.out, r.err
    assert ctx.lines() == []  # nothing ran
    assert ctx.job_dirs() == []  # no job output folder
    assert not (ctx.sweep_dir / ".submitit").exists()  # nothing submitted
    assert snapshot(ctx.cache) == before  # the cache is untouched


def test_full_error_shows_the_traceback(ctx: Ctx) -> None:
    before = snapshot(ctx.cache)
    r = ctx.run(APP, "hydra/sweeper=exca", "model=conv,transformer", "lr=0.1,abc", full_error=True)
    assert r.code != 0
    assert "Traceback" in r.err and "#1 : model=conv lr=abc" in r.err
    assert ctx.lines() == [] and ctx.job_dirs() == [] and snapshot(ctx.cache) == before


# ----- a return value that cannot be pickled -----
@pytest.mark.parametrize("sweeper", list(SWEEPERS))
@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
def test_unpicklable_return_value(ctx: Ctx, sweeper: str, cached: bool) -> None:
    if cached:  # another program than the one that filled the cache (entries record it): its own
        shutil.rmtree(ctx.cache)
        ctx.cache.mkdir()
    before = snapshot(ctx.cache)
    args = () if cached else ("infra.folder=null",)
    r = ctx.run(UNPICKLABLE_APP, *SWEEPERS[sweeper], "lr=0.1,0.7", *args)
    assert r.code != 0
    out = r.out + r.err
    assert "cannot be pickled" in r.err and "lambda" in r.err, r.err
    assert re.search(r"^\s+1\s+FAILED\s", out, re.M), out  # the job is reported failed...
    assert re.search(r"^\s+0\s+COMPLETED\s", out, re.M), out
    assert sorted(ctx.lines()) == ["0 ConvCfg lr=0.1", "1 ConvCfg lr=0.7"]
    failed = entry(ctx.cache, "app.main,0", model={"name": "conv"}, lr=0.7)
    after = snapshot(ctx.cache)
    if cached:  # ...its failure is recorded, and no result; the other job's result is
        assert sorted(p.name for p in failed.iterdir()) == ["config.yaml", "error.pkl", "error.txt", "outcome.json", "program.txt", "uid.yaml"]
        assert "cannot be pickled" in (failed / "error.txt").read_text()
        done = entry(ctx.cache, "app.main,0", model={"name": "conv"}, lr=0.1)
        assert (done / "result.pkl").exists() and (done / "program.txt").read_text() == str(UNPICKLABLE_APP.resolve())
    else:
        assert not failed.exists() and after == before


# ----- a task function without a model annotation -----
def _no_annotation(cfg):  # type: ignore[no-untyped-def]
    return cfg


def _dictconfig(cfg: DictConfig) -> None:  # a plain Hydra task: hydra.main is the decorator
    pass


def _dict(cfg: dict) -> None:  # type: ignore[type-arg]
    pass


def _no_parameter() -> None:
    pass


def _unresolved(cfg: "NoSuchModel") -> None:  # type: ignore[name-defined]  # noqa: F821
    pass


@pytest.mark.usefixtures("hydra_restore_singletons")
@pytest.mark.parametrize("function", [_no_annotation, _dictconfig, _dict, _no_parameter, _unresolved])
def test_task_without_model_annotation_fails_at_decoration(function: tp.Callable[..., tp.Any]) -> None:
    import exca_hydra

    decorator = exca_hydra.main(config_path=None, config_name=None)
    with pytest.raises(TypeError) as info:
        decorator(function)
    message = str(info.value)
    assert function.__qualname__ in message
    assert "annotate the first parameter" in message and "def main(cfg: MyModel)" in message
    assert "hydra.main" in message  # ...and the alternative for a DictConfig task


@pytest.mark.usefixtures("hydra_restore_singletons")  # hydra.main sets Hydra's version base process-wide
def test_task_with_model_annotation_is_accepted() -> None:
    import exca_hydra

    def main(trainer: Trainer) -> None:  # (annotations are strings here: resolved from the module)
        pass

    wrapped = exca_hydra.main(config_path=None, config_name=None)(main)
    assert callable(wrapped)


def test_red_team_general_bad_inputs_are_refused_up_front(tmp_path: Path) -> None:
    """redteam-general F8, F15, F20, F7: a negative local timeout killed every job at once (and the
    failure was cached); an async or generator method was accepted, then every call cached a
    pickling failure; a 300-character or multi-line version gave a raw OSError or a folder name
    with a newline; results(best=...) guessed that higher is better, and a misspelt status or
    folder returned []."""
    import pydantic as pd

    import exca_hydra
    from exca_hydra import TaskInfra
    from exca_hydra.bridge.launch.params import LocalLauncherParams

    for bad in (-1, 0):
        with pytest.raises(pd.ValidationError):
            LocalLauncherParams(timeout_min=bad)
    assert LocalLauncherParams(timeout_min=0.05).timeout_min == 0.05
    for version in ("x" * 300, "1\n2"):
        with pytest.raises(pd.ValidationError, match="printable"):
            TaskInfra(version=version)
    for body in ("async def run(self) -> int:\n    return 1\n", "def run(self):\n    yield 1\n"):
        with pytest.raises(TypeError, match="coroutine or a generator"):
            TaskInfra().apply(_function(body))
    with pytest.raises(ValueError, match="maximize"):
        exca_hydra.results(tmp_path, best="result")
    with pytest.raises(ValueError, match="status='complete'"):
        exca_hydra.results(tmp_path, status="complete")
    with pytest.raises(FileNotFoundError):
        exca_hydra.results(tmp_path / "nope")


def _function(body: str) -> tp.Any:
    namespace: dict[str, tp.Any] = {}
    exec(body, namespace)
    return namespace["run"]


def test_a_config_changed_in_place_after_its_result_gets_no_remove_that_folder_advice(tmp_path: Path) -> None:
    """redteam-general F5: after a completed run, x.append() then run() said "belongs to another
    config ... Remove that folder" about a correct entry: following it lost a good result."""
    import pydantic as pd

    from exca_hydra import TaskInfra
    from exca_hydra.cache.store import CacheError

    class Listed(pd.BaseModel):
        x: list[int] = []
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return len(self.x)

    task = Listed(infra={"folder": tmp_path})
    assert task.run() == 0
    task.x.append(5)
    with pytest.raises(CacheError) as info:
        task.run()
    assert "changed after its uid" in str(info.value) and "Remove that folder" not in str(info.value)
