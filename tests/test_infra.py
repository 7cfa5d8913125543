"""TaskInfra: execution, caching, modes, job arrays and the cache store (issue 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import pickle
import signal
import threading
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest
import yaml

from exca_hydra import TaskInfra
from exca_hydra.cache.store import CacheError, Entry, JobFailure

import models
from models import Gated, MyTask, Snapshot, Trainer, TransformerCfg, Unpicklable, calls


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, where decorated methods record their calls (jobs inherit the variable)."""
    monkeypatch.setenv("EXCA_TEST_DIR", str(tmp_path))
    return tmp_path


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# ---------------------------------------------------------------- the seed's snippets
def test_seed_mytask_without_infra_parameters(env: Path) -> None:
    obj = MyTask(x=12)
    assert obj.x == 12
    assert obj.compute() == 24
    assert obj.compute() == 24
    assert calls(env) == ["MyTask:12", "MyTask:12"]  # no folder: no cache, a plain call
    with pytest.raises(pydantic.ValidationError, match="x"):
        MyTask(x="blublu")


@pytest.mark.parametrize("cluster", [None, "local"])
def test_seed_mytask_yaml_and_caching(env: Path, cluster: str | None) -> None:
    config = f"""
x: 12
y: whatever
infra:
  cluster: {cluster or 'null'}
  folder: {env / 'cache'}
  cpus_per_task: 4
"""
    obj = MyTask(**yaml.safe_load(config))
    assert obj.infra.status() == "not submitted"
    assert obj.compute() == 24
    assert obj.infra.status() == "completed"
    assert calls(env) == ["MyTask:12"]
    # a second object with the same config (other resources) reuses the result
    again = MyTask(x=12, y="whatever", infra={"folder": env / "cache", "cluster": None})
    assert again.infra.status() == "completed"
    assert again.compute() == 24
    assert calls(env) == ["MyTask:12"]
    entry = obj.infra.uid_folder()
    assert entry is not None
    assert {"config.yaml", "uid.yaml", "result.pkl"} <= files(entry)
    assert ("job.json" in files(entry)) == (cluster is not None)
    assert yaml.safe_load((entry / "uid.yaml").read_text()) == {"x": 12, "y": "whatever"}
    assert yaml.safe_load((entry / "config.yaml").read_text())["infra"]["cpus_per_task"] == 4


def test_seed_trainer_discriminated_union(env: Path) -> None:
    string = """
model:
  name: transformer
  embeddings: 256
optimizer: SGD
"""
    trainer = Trainer(**yaml.safe_load(string))
    assert isinstance(trainer.model, TransformerCfg)
    assert trainer.run()["embeddings"] == 256
    # only transformer parameters are accepted for a transformer
    with pytest.raises(pydantic.ValidationError, match="model.transformer.kernel"):
        Trainer(model={"name": "transformer", "kernel": 3})
    with pytest.raises(pydantic.ValidationError, match="model"):
        Trainer(model={"name": "rnn"})


@pytest.mark.parametrize("cluster", [None, "local"])
def test_seed_job_array_over_layers(env: Path, cluster: str | None) -> None:
    string = f"""
model:
  name: transformer
  embeddings: 256
optimizer: SGD
infra:
  cluster: {cluster or 'null'}
  folder: {env / 'cache'}
  cpus_per_task: 2
"""
    trainer = Trainer(**yaml.safe_load(string))
    with trainer.infra.job_array() as array:
        for layers in [12, 14, 15]:
            array.append(trainer.infra.clone_obj({"model.layers": layers}))
    assert len(array) == 3
    assert {item.infra.status() for item in array} <= {"running", "completed"}
    outs = [item.run() for item in array]  # blocks until each job is done
    assert [o["layers"] for o in outs] == [12, 14, 15]
    assert all(o["embeddings"] == 256 and o["optimizer"] == "SGD" and not o["resumed"] for o in outs)
    if cluster == "local":
        assert all(o["pid"] != os.getpid() for o in outs)
    else:
        assert all(o["pid"] == os.getpid() for o in outs)
    assert sorted(calls(env)) == ["Trainer:transformer:12", "Trainer:transformer:14", "Trainer:transformer:15"]
    for item, layers in zip(array, [12, 14, 15]):
        folder = item.infra.uid_folder()
        assert (folder / "checkpoint.txt").read_text() == str(layers)
    # only missing items are submitted: 12 and 15 are cached, 16 is new
    other = Trainer(**yaml.safe_load(string))
    with other.infra.job_array() as array2:
        for layers in [12, 16, 15]:
            array2.append(other.infra.clone_obj({"model.layers": layers}))
    assert [o["layers"] for o in (item.run() for item in array2)] == [12, 16, 15]
    assert sorted(calls(env))[-1] == "Trainer:transformer:16"
    assert len(calls(env)) == 4


# ---------------------------------------------------------------- status and modes
def test_status_transitions_local(env: Path) -> None:
    infra = {"folder": env / "cache", "cluster": "local"}
    obj = Gated(x=1, infra=infra)
    assert obj.infra.status() == "not submitted"
    start = time.time()
    with obj.infra.job_array() as array:
        array.append(obj)
    assert time.time() - start < 10  # non blocking: the job waits for the release file
    assert obj.infra.status() == "running"
    entry = obj.infra.uid_folder()
    job_ref = json.loads((entry / "job.json").read_text())
    assert job_ref["backend"] == "LocalJob"
    # cached mode reuses the running job: nothing resubmitted
    twin = Gated(x=1, infra=infra)
    with twin.infra.job_array() as array:
        array.append(twin)
    assert json.loads((entry / "job.json").read_text())["job_id"] == job_ref["job_id"]
    timer = threading.Timer(0.3, (env / "release").touch)
    timer.start()
    try:
        assert twin.compute() == 1  # waits for the running job
    finally:
        timer.cancel()
    assert obj.infra.status() == "completed"
    assert obj.compute() == 1
    assert calls(env) == ["Gated:1"]
    assert obj.infra.job().result() is None or obj.infra.job().done()
    obj.infra.clear_job()
    assert obj.infra.status() == "not submitted"
    assert "result.pkl" not in files(entry) and "config.yaml" in files(entry)


def test_killed_local_job_is_failed(env: Path) -> None:
    obj = Gated(x=7, infra={"folder": env / "cache", "cluster": "local"})
    with obj.infra.job_array() as array:
        array.append(obj)
    assert obj.infra.status() == "running"
    ref = json.loads((obj.infra.uid_folder() / "job.json").read_text())
    os.kill(int(ref["job_id"]), signal.SIGKILL)  # dies without a result or a Python error
    deadline = time.time() + 10
    while obj.infra.status() == "running" and time.time() < deadline:
        time.sleep(0.05)
    assert obj.infra.status() == "failed"
    with pytest.raises(JobFailure, match="without a result"):
        Gated(x=7, infra={"folder": env / "cache", "cluster": "local"}).compute()


def test_failure_local(env: Path) -> None:
    (env / "fail").touch()
    obj = MyTask(x=5, infra={"folder": env / "cache", "cluster": "local"})
    with pytest.raises(ValueError, match="failing on purpose for x=5"):
        obj.compute()
    assert obj.infra.status() == "failed"
    entry = obj.infra.uid_folder()
    assert "result.pkl" not in files(entry)
    assert "failing on purpose" in (entry / "error.txt").read_text()
    # cached: the recorded failure is raised again, not recomputed
    with pytest.raises(ValueError, match="failing on purpose"):
        MyTask(x=5, infra={"folder": env / "cache", "cluster": "local"}).compute()
    assert calls(env) == ["MyTask:5"]
    (env / "fail").unlink()
    retry = MyTask(x=5, infra={"folder": env / "cache", "cluster": "local", "mode": "retry"})
    assert retry.compute() == 10
    assert calls(env) == ["MyTask:5", "MyTask:5"]
    assert obj.infra.status() == "completed"


def test_modes_inline(env: Path) -> None:
    cache = env / "cache"

    def task(mode: str = "cached", x: int = 1) -> MyTask:
        return MyTask(x=x, infra={"folder": cache, "mode": mode})

    (env / "fail").touch()
    failing = task()
    with pytest.raises(ValueError):
        failing.compute()
    assert failing.infra.status() == "failed"
    assert not failing.infra.uid_folder().joinpath("result.pkl").exists()
    with pytest.raises(ValueError):  # cached: re-raise, no recompute
        task().compute()
    with pytest.raises(ValueError):  # read-only: raises the recorded error
        task("read-only").compute()
    assert len(calls(env)) == 1
    (env / "fail").unlink()
    # retry recomputes failures (once)
    retry = task("retry")
    assert retry.compute() == 2
    assert retry.compute() == 2
    assert len(calls(env)) == 2
    assert task("retry").compute() == 2  # completed: retry reuses it
    assert len(calls(env)) == 2
    # force recomputes once per object
    forced = task("force")
    assert forced.compute() == 2
    assert forced.compute() == 2
    assert len(calls(env)) == 3
    assert task("force").compute() == 2
    assert len(calls(env)) == 4
    # read-only: hit is fine, miss raises and writes nothing
    assert task("read-only").compute() == 2
    missing = task("read-only", x=99)
    with pytest.raises(RuntimeError, match="read-only"):
        missing.compute()
    with pytest.raises(RuntimeError, match="read-only"):
        with missing.infra.job_array() as array:
            array.append(missing)
    assert not missing.infra.uid_folder().exists()
    assert len(calls(env)) == 4
    assert calls(env) == ["MyTask:1"] * 4


def test_force_in_job_array(env: Path) -> None:
    base = MyTask(x=0, infra={"folder": env / "cache"})
    assert base.compute() == 0
    forced = MyTask(x=0, infra={"folder": env / "cache", "mode": "force"})
    with forced.infra.job_array() as array:
        array.append(forced.infra.clone_obj({"x": 0}))
        array.append(forced.infra.clone_obj({"x": 1}))
    assert calls(env) == ["MyTask:0", "MyTask:0", "MyTask:1"]
    assert [item.compute() for item in array] == [0, 2]
    assert len(calls(env)) == 3  # computed in the array: not again on read


# ---------------------------------------------------------------- job arrays
def test_job_array_errors(env: Path) -> None:
    obj = MyTask(x=1, infra={"folder": env / "cache"})
    with pytest.raises(ValueError, match=r"duplicates: items 0 and 2") as info:
        with obj.infra.job_array() as array:
            array.extend([obj.infra.clone_obj(x=1), obj.infra.clone_obj(x=2), obj.infra.clone_obj(x=1)])
    assert "x: 1" in str(info.value)
    assert calls(env) == []  # nothing was submitted
    with obj.infra.job_array(allow_repeated_tasks=True) as array:
        array.extend([obj.infra.clone_obj(x=1), obj.infra.clone_obj(x=2), obj.infra.clone_obj(x=1)])
    assert sorted(calls(env)) == ["MyTask:1", "MyTask:2"]
    assert [item.compute() for item in array] == [2, 4, 2]
    assert len(calls(env)) == 2
    with pytest.raises(RuntimeError, match="allow_empty"):
        with obj.infra.job_array():
            pass
    with obj.infra.job_array(allow_empty=True) as array:
        pass
    assert array == []


# ---------------------------------------------------------------- API
def test_uid_folder_and_config(env: Path) -> None:
    assert MyTask(x=1).infra.uid_folder() is None
    obj = MyTask(x=1, y="a", infra={"folder": env / "cache", "version": "3"})
    folder = obj.infra.uid_folder()
    assert folder == env / "cache" / "models.MyTask.compute,3" / obj.infra.uid()
    assert not folder.exists()
    assert obj.infra.uid_folder(create=True) == folder and folder.is_dir()
    assert obj.infra.config(uid=True) == {"x": 1, "y": "a", "infra": {"version": "3"}}
    full = obj.infra.config()
    assert full["x"] == 1 and full["y"] == "a"
    assert full["infra"]["folder"] == str(env / "cache") and full["infra"]["version"] == "3"
    json.dumps(full)  # json ready
    assert MyTask.model_validate(full).infra.uid() == obj.infra.uid()
    assert obj.infra.config(exclude_defaults=True) == {"x": 1, "y": "a", "infra": {"folder": str(env / "cache"), "version": "3"}}


def test_relative_folder_is_made_absolute(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(env)
    obj = MyTask(x=1, infra={"folder": "rel"})
    assert obj.infra.folder == env / "rel"


def test_clone_obj(env: Path) -> None:
    trainer = Trainer(model={"name": "conv", "layers": 3}, infra={"folder": env / "cache"})
    clone = trainer.infra.clone_obj({"model.layers": 14, "optimizer": "SGD"})
    assert clone is not trainer and isinstance(clone, Trainer)
    assert clone.model.layers == 14 and clone.optimizer == "SGD" and clone.model.kernel == 5
    assert trainer.model.layers == 3 and trainer.optimizer == "Adam"
    assert clone.infra.folder == env / "cache"
    assert clone.infra.uid() != trainer.infra.uid()
    switched = trainer.infra.clone_obj({"model": {"name": "transformer", "embeddings": 4}})
    assert isinstance(switched.model, TransformerCfg)
    assert trainer.infra.clone_obj(optimizer="SGD").optimizer == "SGD"
    for bad in ({"unknown": 1}, {"model.layers": "many"}, {"infra.cpu": 2}, {"infra.mode": "sometimes"}):
        with pytest.raises(pydantic.ValidationError):
            trainer.infra.clone_obj(bad)
    # TransformerCfg forbids extras (ConvCfg, as in the seed, leaves pydantic's default "ignore")
    with pytest.raises(pydantic.ValidationError, match="model.transformer.unknown"):
        switched.infra.clone_obj({"model.unknown": 1})
    with pytest.raises(pydantic.ValidationError):  # conv fields are not transformer fields
        trainer.infra.clone_obj({"model.name": "transformer"})
    assert not (env / "cache").exists()


def test_iter_cached(env: Path) -> None:
    cache = env / "cache"
    for x in (1, 2):
        MyTask(x=x, infra={"folder": cache}).compute()
    (env / "fail").touch()
    with pytest.raises(ValueError):
        MyTask(x=3, infra={"folder": cache}).compute()
    MyTask(x=4, infra={"folder": cache}).infra.uid_folder(create=True)  # no result, no job
    probe = MyTask(x=0, infra={"folder": cache})
    found = list(probe.infra.iter_cached())
    assert sorted(obj.x for obj in found) == [1, 2, 3]
    assert all(isinstance(obj, MyTask) for obj in found)
    assert sorted(obj.infra.status() for obj in found) == ["completed", "completed", "failed"]
    assert list(MyTask(x=0).infra.iter_cached()) == []


def test_keep_in_ram(env: Path) -> None:
    cache = env / "cache"
    trainer = Trainer(model={"name": "conv"}, infra={"folder": cache, "keep_in_ram": True})
    first = trainer.run()
    assert trainer.run() is first  # same object, from memory
    (trainer.infra.uid_folder() / "result.pkl").unlink()
    assert trainer.run() is first  # not even read from disk
    plain = Trainer(model={"name": "conv", "layers": 2}, infra={"folder": cache})
    out = plain.run()
    again = plain.run()
    assert again == out and again is not out  # loaded from the cache each time
    assert len(calls(env)) == 2


def test_sub_config_with_its_own_infra(env: Path) -> None:
    class Outer(pydantic.BaseModel):
        task: MyTask
        factor: int = 10
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def total(self) -> int:
            return self.factor * self.task.compute()

    outer = Outer(task={"x": 2, "infra": {"folder": env / "inner"}}, infra={"folder": env / "outer"})
    assert outer.total() == 40
    assert outer.task.infra.status() == "completed"
    assert outer.task.infra.uid_folder().parent.parent == env / "inner"
    assert outer.infra.uid_folder().parent.parent == env / "outer"
    assert outer.infra.config(uid=True) == {"task": {"x": 2}}


# ---------------------------------------------------------------- bad definitions and inputs
def test_class_definition_errors() -> None:
    with pytest.raises(ValueError, match="only 'self'"):

        class WithParams(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def compute(self, y: int) -> int:
                return y

    with pytest.raises(RuntimeError) as info:

        class NotPydantic:
            infra = TaskInfra()

            @infra.apply
            def compute(self) -> int:
                return 1

    message = str(info.value) + str(info.value.__cause__)
    assert "pydantic.BaseModel" in message

    with pytest.raises(RuntimeError) as info:

        class NotApplied(pydantic.BaseModel):
            infra: TaskInfra = TaskInfra()

    assert "apply" in str(info.value) + str(info.value.__cause__)


def test_infra_makes_owner_extra_forbid() -> None:
    assert MyTask.model_config.get("extra") == "forbid"
    with pytest.raises(pydantic.ValidationError, match="z"):
        MyTask(x=1, z=12)
    with pytest.raises(pydantic.ValidationError, match="infra.cpus"):
        MyTask(x=1, infra={"cpus": 2})


def test_cluster_without_folder_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="folder"):
        TaskInfra(cluster="slurm")
    with pytest.raises(pydantic.ValidationError, match="infra"):
        MyTask(x=1, infra={"cluster": "slurm"})
    with pytest.raises(pydantic.ValidationError):
        MyTask(x=1, infra={"cluster": "local"})
    with pytest.raises(pydantic.ValidationError, match="version"):
        MyTask(x=1, infra={"version": "../x"})


def test_failed_validation_writes_nothing(env: Path) -> None:
    cache = env / "cache"
    with pytest.raises(pydantic.ValidationError, match="x"):
        MyTask(x="blublu", infra={"folder": cache})
    with pytest.raises(pydantic.ValidationError):
        Trainer(model={"name": "conv", "layers": "x"}, infra={"folder": cache, "cluster": "local"})
    obj = MyTask(x=1, infra={"folder": cache})
    with pytest.raises(pydantic.ValidationError):
        obj.infra.clone_obj(x="nope")
    assert not cache.exists()
    assert calls(env) == []


# ---------------------------------------------------------------- store
def test_atomic_result_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = Entry(tmp_path / "uid")
    entry.write_result({"a": 1})
    assert files(entry.folder) == {"result.pkl", "outcome.json"}  # no temporary file left
    assert entry.load_result() == {"a": 1}
    # a crash while writing never leaves a partial result that reads as cached
    other = Entry(tmp_path / "other")

    def crash(*args: tp.Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        other.write_result([1, 2, 3])
    assert not other.has_result() and other.file_status() is None
    assert files(other.folder) == set()


def test_write_result_clears_previous_error(tmp_path: Path) -> None:
    entry = Entry(tmp_path / "uid")
    entry.write_error(ValueError("boom"), "traceback text")
    assert entry.file_status() == "failed"
    assert isinstance(entry.load_error(), ValueError)
    entry.write_result(3)
    assert entry.file_status() == "completed"
    assert files(entry.folder) == {"result.pkl", "outcome.json"}


def test_unpicklable_result_recorded_as_failed(env: Path) -> None:
    obj = Unpicklable(infra={"folder": env / "cache"})
    with pytest.raises(Exception) as info:
        obj.compute()
    assert isinstance(info.value, (pickle.PicklingError, AttributeError, TypeError))
    entry = obj.infra.uid_folder()
    assert obj.infra.status() == "failed"
    assert "result.pkl" not in files(entry)
    assert not any(name.startswith(".tmp") for name in files(entry))
    with pytest.raises(Exception):
        Unpicklable(infra={"folder": env / "cache"}).compute()
    assert calls(env) == ["Unpicklable"]


def test_unreadable_result_is_a_clear_error(env: Path) -> None:
    obj = MyTask(x=1, infra={"folder": env / "cache"})
    obj.compute()
    (obj.infra.uid_folder() / "result.pkl").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="unreadable"):
        MyTask(x=1, infra={"folder": env / "cache"}).compute()


# ---------------------------------------------------------------- workdir
def test_workdir_snapshot_local(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = env / "snapcode"
    code.mkdir()
    (code / "__init__.py").write_text("")
    (code / "mod.py").write_text("VALUE = 1\n")
    monkeypatch.chdir(env)  # without a snapshot, jobs started here import snapcode from here
    cache = env / "cache"
    snap = Snapshot(infra={"folder": cache, "cluster": "local", "workdir": {"copied": [code]}})
    with snap.infra.job_array() as array:
        array.append(snap)
    (code / "mod.py").write_text("VALUE = 2\n")  # edit the original after submission
    # control: the same job without a workdir sees the edit
    plain = Snapshot(infra={"folder": cache, "cluster": "local", "version": "plain"})
    with plain.infra.job_array() as array:
        array.append(plain)
    value, path = snap.compute()
    assert value == 1
    assert Path(path).is_relative_to(cache / "code")
    assert plain.compute() == (2, str((code / "mod.py").resolve()))
    assert Path.cwd() == env  # submission restored the working directory


def test_submodels_without_extra_setting_become_strict() -> None:
    class Sub(pydantic.BaseModel):  # no model_config: would silently drop unknown keys
        name: tp.Literal["sub"] = "sub"
        depth: int = 1

    class Owner(pydantic.BaseModel):
        sub: Sub = Sub()
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> int:
            return self.sub.depth

    assert Owner(sub={"depth": 2}).run() == 2
    with pytest.raises(pydantic.ValidationError, match=r"sub\.typo"):
        Owner(sub={"typo": 2})


def test_nested_submodels_become_strict_whatever_the_class_order() -> None:
    """A model two levels down is strict inside its parent: the parent is rebuilt after its
    child (with a set, the order followed memory addresses and half the trees kept a lax leaf)."""
    for round_ in range(20):

        class Leaf(pydantic.BaseModel):
            name: tp.Literal["leaf"] = "leaf"

        class Other(pydantic.BaseModel):
            name: tp.Literal["other"] = "other"

        class Mid(pydantic.BaseModel):
            leaf: Leaf | Other = pydantic.Field(default_factory=Leaf, discriminator="name")

        class Top(pydantic.BaseModel):
            mid: Mid = Mid()
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def run(self) -> int:
                return 1

        with pytest.raises(pydantic.ValidationError, match=r"mid\.leaf\.leaf\.typo"):
            Top(mid={"leaf": {"name": "leaf", "typo": 3}})
        with pytest.raises(pydantic.ValidationError, match=r"leaf\.leaf\.typo"):
            Mid(leaf={"name": "leaf", "typo": 3})


def test_infra_repr_shows_only_set_fields(tmp_path: Path) -> None:
    infra = TaskInfra(folder=tmp_path, cpus_per_task=4)
    assert "cpus_per_task=4" in repr(infra) and "slurm_qos" not in repr(infra)


def test_a_changed_default_is_detected_not_served_stale(tmp_path: Path) -> None:
    def make(default: int) -> type:
        class Job(pydantic.BaseModel):
            x: int = 1
            scale: int = default
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def run(self) -> int:
                return self.x * self.scale

        Job.__qualname__ = "Job"  # same cache folder for both versions of the class
        return Job

    old, new = make(2), make(3)
    assert old(infra={"folder": tmp_path}).run() == 2
    same = new(infra={"folder": tmp_path})
    assert same.infra.uid() == old(infra={"folder": tmp_path}).infra.uid()  # default left out
    with pytest.raises(CacheError, match=r"scale \(cached with 2, now 3\)"):
        same.run()
    forced = new(infra={"folder": tmp_path, "mode": "force"})
    assert forced.run() == 3  # force recomputes with the new default


def test_corrupted_cache_files_are_reported(tmp_path: Path) -> None:
    task = MyTask(x=3, infra={"folder": tmp_path})
    assert task.compute() == 6
    folder = task.infra.uid_folder()
    (folder / "uid.yaml").write_text("x: 4\n")  # an entry that is not this config's
    with pytest.raises(CacheError, match="belongs to another config"):
        MyTask(x=3, infra={"folder": tmp_path}).compute()
    (folder / "uid.yaml").write_text("x: 3\n")
    (folder / "config.yaml").write_text("x: 5\ny: blublu\n")  # edited by hand
    with pytest.raises(CacheError, match="x .cached with 5, now 3."):
        MyTask(x=3, infra={"folder": tmp_path}).compute()
    (folder / "config.yaml").write_text("x: 3\n")
    data = (folder / "result.pkl").read_bytes()
    (folder / "result.pkl").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CacheError, match="unreadable"):
        MyTask(x=3, infra={"folder": tmp_path}).compute()


def test_version_given_as_a_number_is_text(tmp_path: Path) -> None:
    task = MyTask(x=1, infra={"folder": tmp_path, "version": 2})  # as `infra.version=2` from Hydra
    assert task.infra.version == "2" and task.infra.method_dir().name.endswith(",2")
    with pytest.raises(pydantic.ValidationError, match="version"):
        MyTask(x=1, infra={"folder": tmp_path, "version": "../up"})


@pytest.mark.parametrize(
    "squeue_id, expected",
    [
        ("12", ["12"]),
        ("12_3", ["12_3"]),
        ("12_[4-6,9%2]", ["12_4", "12_5", "12_6", "12_9"]),  # pending range with a parallelism limit
        ("7_[0-10:5]", ["7_0", "7_5", "7_10"]),
    ],
)
def test_squeue_array_ids_are_expanded_to_tasks(squeue_id: str, expected: list[str]) -> None:
    from exca_hydra.execution.slurm import _task_ids

    assert _task_ids(squeue_id) == expected


def test_a_step_killed_by_the_early_timeout_warning_is_explained(tmp_path: Path) -> None:
    """srun's line is Slurm's word when no slurmstepd '***' line exists; an early SIGUSR2 (the
    time limit's warning, before Python's handler) is named for what it is."""
    from exca_hydra.execution.failures import failure_from_job
    from exca_hydra.execution.slurm import slurm_says

    log = tmp_path / "244_0_log.err"
    log.write_text("starting\nsrun: error: vm: task 0: User defined signal 2\n")
    message = str(failure_from_job("Slurm job 244", str(log), "FAILED"))
    assert "Slurm: srun: error: vm: task 0: User defined signal 2. SIGUSR2 is the warning" in message
    assert "timeout_min shorter than signal_delay_s" in message and str(log) in message
    log.write_text("srun: error: vm: task 0: Killed\nslurmstepd: error: *** JOB 12 ON vm CANCELLED AT t DUE TO TIME LIMIT ***\n")
    assert slurm_says(log).endswith("DUE TO TIME LIMIT ***")  # slurmstepd's line first
    assert "SIGUSR2" not in str(failure_from_job("Slurm job 12", str(log), "TIMEOUT"))


def test_a_model_with_frozenset_keys_runs_and_is_a_hit_under_every_hash_seed(tmp_path: Path) -> None:
    """Issue 21: dict[frozenset[str], int] fields: config.yaml is written (JSON cannot hold
    such keys: they are written sorted, as the stored-config check reads them), and every later
    process, whatever its PYTHONHASHSEED, finds the entry."""
    script = tmp_path / "fz.py"
    script.write_text(
        "import sys, pydantic\nfrom exca_hydra import TaskInfra\n"
        "class M(pydantic.BaseModel):\n    d: dict[frozenset[str], int] = {}\n    infra: TaskInfra = TaskInfra()\n"
        "    @infra.apply\n    def run(self) -> int:\n        print('computing')\n        return len(self.d)\n"
        "print(M(d={frozenset('abcdef'): 1}, infra={'folder': sys.argv[1]}).run())\n"
    )
    outs = [subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}, timeout=60) for seed in (1, 2, 3, 4)]  # fmt: skip
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    assert [o.stdout.split() for o in outs] == [["computing", "1"], ["1"], ["1"], ["1"]]


def test_exclude_from_cache_uid_names_fields() -> None:
    """From the red team's notes: a typo in exclude_from_cache_uid was accepted, and the field it
    meant stayed in the uid, silently."""
    import pydantic

    from exca_hydra import MapInfra, TaskInfra

    for kind, apply in ((TaskInfra, {}), (MapInfra, {"item_uid": str})):
        with pytest.raises(Exception) as info:

            class Typo(pydantic.BaseModel):
                seed: int = 0
                infra: tp.Any = kind()

                if apply:

                    @infra.apply(exclude_from_cache_uid=("sede",), **apply)
                    def g(self, items: tp.Iterable[str]) -> tp.Iterator[str]:
                        yield from items

                else:

                    @infra.apply(exclude_from_cache_uid=("sede",))
                    def f(self) -> tp.Any:
                        return 1

        error = info.value.__cause__ or info.value
        assert "exclude_from_cache_uid names no field of Typo: 'sede'" in str(error) and "seed" in str(error), error


@pytest.mark.parametrize(
    "path, said",
    [
        ("sub.zz", "'sub.zz' names no field of T.sub (its fields: a, b)"),
        ("items.b", "cannot follow 'items.b' on T: items is not a sub-config"),
        ("items.0.b", "cannot follow 'items.0.b' on T: items is not a sub-config"),
        ("d.k", "cannot follow 'd.k' on T: d is not a sub-config"),
        ("opt.sub.zz", "'opt.sub.zz' names no field of T.opt.sub (its fields: a, b)"),
    ],
)
def test_a_nested_excluded_path_the_uid_cannot_follow_is_refused(path: str, said: str) -> None:
    """redteam-uid F3: a misspelt nested path, or one into a list's items or a dict's keys, was
    accepted and excluded nothing (each such value still made a new uid, silently)."""
    import pydantic

    from exca_hydra import TaskInfra

    class Sub(pydantic.BaseModel):
        a: int = 1
        b: int = 2

    class Opt(pydantic.BaseModel):
        sub: Sub = Sub()

    with pytest.raises(Exception) as info:

        class T(pydantic.BaseModel):
            sub: Sub = Sub()
            opt: Opt | None = None
            items: list[Sub] = [Sub()]
            d: dict[str, int] = {"k": 1}
            infra: TaskInfra = TaskInfra()

            @infra.apply(exclude_from_cache_uid=(path,))
            def run(self) -> int:
                return 1

    error = info.value.__cause__ or info.value
    assert said in str(error), error


def test_a_nested_excluded_path_through_an_optional_sub_config_is_honoured() -> None:
    import pydantic

    from exca_hydra import TaskInfra

    class Sub(pydantic.BaseModel):
        a: int = 1
        b: int = 2

    class Opt(pydantic.BaseModel):
        sub: Sub = Sub()

    class T(pydantic.BaseModel):
        opt: Opt | None = None
        infra: TaskInfra = TaskInfra()

        @infra.apply(exclude_from_cache_uid=("opt.sub.b",))
        def run(self) -> int:
            return 1

    one, other = T(opt={"sub": {"b": 5}}), T(opt={"sub": {"b": 7}})
    assert one.infra.uid() == other.infra.uid() != T(opt={"sub": {"a": 5}}).infra.uid()
