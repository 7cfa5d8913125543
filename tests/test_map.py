"""MapInfra (issue 23): exca's API, fields and uid; what a call computes; errors; modes.

Models: tests/map_models.py (importable by job processes). Storage and concurrency:
tests/test_map_store.py; Hydra, the CLI, the README and Slurm: tests/test_map_hydra.py.
"""

from __future__ import annotations

import inspect
import logging
import sys
import typing as tp
from pathlib import Path

import numpy as np
import pydantic
import pytest

from exca_hydra import MapInfra
from exca_hydra.cache.layout import method_folder, method_name
from exca_hydra.cache.uid import uid_config, uid_string
from exca_hydra.execution.options import SlurmOptions
from exca_hydra.map.batch import MapItemError, to_chunks
from exca_hydra.map.compute import Progress
from map_models import Values, Vectors


def computed(folder: Path) -> list[str]:
    path = folder / "computed.log"
    return path.read_text().split() if path.exists() else []


def expected(item: str, scale: float = 1.0) -> np.ndarray:
    return np.arange(16, dtype=np.float32) * scale + len(item)


# ----- the API -----
def test_the_issue_example_computes_only_the_missing_items(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["a", "b", "c"]))
    assert computed(tmp_path) == ["a", "b", "c"]
    out = list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["b", "c", "dd"]))
    assert computed(tmp_path) == ["a", "b", "c", "dd"]
    assert [o.tolist() for o in out] == [expected(x).tolist() for x in ["b", "c", "dd"]]


def test_outputs_in_item_order_with_duplicates_generator_in_generator_out(tmp_path: Path) -> None:
    model = Vectors(log=str(tmp_path), infra={"folder": tmp_path / "cache"})
    items = ["ccc", "a", "ccc", "bb", "a"]
    out = model.vectors(x for x in items)  # a generator in
    assert inspect.isgenerator(out)  # a generator out
    assert [o.tolist() for o in out] == [expected(x).tolist() for x in items]
    assert sorted(computed(tmp_path)) == ["a", "bb", "ccc"]  # each key once


def test_keyword_argument_and_wrong_arguments(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache"})
    assert len(list(model.vectors(items=["a"]))) == 1
    with pytest.raises(ValueError, match="only takes 1 argument"):
        model.vectors(["a"], ["b"])


def test_apply_refuses_what_exca_refuses() -> None:
    with pytest.raises(ValueError, match="exactly 'self' and 1 input parameter"):

        class Two(pydantic.BaseModel):
            infra: MapInfra = MapInfra()

            @infra.apply(item_uid=str)
            def f(self, a: list[int], b: int) -> tp.Iterator[int]:
                yield from a

    with pytest.raises(TypeError, match="annotated as List, Tuple, Sequence or Iterable"):

        class NotIterable(pydantic.BaseModel):
            infra: MapInfra = MapInfra()

            @infra.apply(item_uid=str)
            def f(self, a: int) -> tp.Iterator[int]:
                yield a

    with pytest.raises(TypeError):
        MapInfra().apply(str)  # type: ignore[call-arg]  # keyword-only, as exca's
    for typo in ("pickle", "MemmapArrayFile"):  # found by the red team (F15): silently ignored
        with pytest.raises(ValueError, match="is not supported: None .* or 'Pickle'"):
            MapInfra().apply(item_uid=str, cache_type=typo)


# ----- the fields -----
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the peer, exca 0.6.0, needs Python 3.11 (compared on 3.11 in the same test run)")
def test_fields_and_defaults_are_excas() -> None:
    import exca

    ours, theirs = MapInfra.model_fields, exca.MapInfra.model_fields
    for name in ("folder", "cluster", "mode", "keep_in_ram", "max_jobs", "min_samples_per_job",
                 "forbid_single_item_computation", "version", "workdir", "job_name", "logs", "timeout_min",
                 "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "mem_gb", "slurm_partition",
                 "slurm_account", "slurm_qos", "slurm_constraint", "slurm_additional_parameters", "slurm_setup"):  # fmt: skip
        assert name in ours, name
        if name not in ("workdir", "slurm_additional_parameters"):
            assert ours[name].default == theirs[name].default, name
    for value in (None, "auto", "local", "slurm", "debug", "threadpool", "processpool"):
        assert MapInfra(cluster=value, folder="/tmp/x").cluster == value
    for mode in ("cached", "force", "read-only"):
        assert MapInfra(mode=mode).mode == mode
    with pytest.raises(pydantic.ValidationError):
        MapInfra(mode="retry")  # exca's MapInfra has no retry either
    with pytest.raises(pydantic.ValidationError):
        MapInfra(nonsense=1)


def test_slurm_fields_come_from_the_one_declaration() -> None:
    for name, info in SlurmOptions.model_fields.items():
        field = MapInfra.model_fields[name]  # already slurm_-prefixed, as MapInfra's
        assert field.annotation == info.annotation and field.default == info.default, name


def test_folder_parent_must_exist_and_clusters_need_a_folder(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="needs to exist"):
        MapInfra(folder=tmp_path / "missing" / "cache")
    with pytest.raises(pydantic.ValidationError, match="requires a folder"):
        MapInfra(cluster="slurm")
    assert MapInfra(cluster="threadpool").folder is None


# ----- the uid -----
def test_uid_names_the_folder_as_for_taskinfra(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = Vectors(scale=2.0, log=str(tmp_path), infra={"folder": cache, "version": "3"})
    list(model.vectors(["a"]))
    uid = uid_string(uid_config(model, ("log", "sleep", "fail_on", "kill_on")))
    folder = method_folder(cache, method_name(Vectors, "vectors"), "3") / uid
    assert model.infra.uid_folder() == folder and (folder / "uid.yaml").exists()
    assert "scale=2" in uid
    # excluded fields do not change the folder; others do
    assert Vectors(scale=2.0, log="/elsewhere", sleep=1, infra={"folder": cache, "version": "3"}).infra.uid_folder() == folder
    assert Vectors(scale=3.0, infra={"folder": cache, "version": "3"}).infra.uid_folder() != folder


def test_a_folder_of_another_config_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = Vectors(infra={"folder": cache})
    list(model.vectors(["a"]))
    uid_yaml = tp.cast(Path, model.infra.uid_folder()) / "uid.yaml"
    uid_yaml.write_text("scale: 5.0\n")
    with pytest.raises(Exception, match="belongs to another config"):
        list(Vectors(infra={"folder": cache}).vectors(["a"]))


# ----- computing what is missing -----
def test_chunks_respect_max_jobs_and_min_samples() -> None:
    items = list(range(10))
    assert [len(c) for c in to_chunks(items, 4)] == [3, 3, 3, 1]
    assert [len(c) for c in to_chunks(items, 4, 5)] == [5, 5]
    assert [len(c) for c in to_chunks(items, None, 3)] == [3, 3, 3, 1]
    assert to_chunks([], 4) == []
    assert sum(to_chunks(items, 128), []) == items


@pytest.mark.parametrize("cluster", ["threadpool", "processpool", "local", "debug"])
def test_clusters_compute_only_missing_items_in_jobs(tmp_path: Path, cluster: str) -> None:
    cache = tmp_path / "cache"
    list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["a", "b"]))
    model = Vectors(log=str(tmp_path), infra={"folder": cache, "cluster": cluster, "max_jobs": 3})
    items = [f"x{i}" for i in range(12)] + ["a", "b"]
    out = list(model.vectors(items))
    assert [o.tolist() for o in out] == [expected(x).tolist() for x in items]
    assert sorted(computed(tmp_path)) == sorted(["a", "b"] + [f"x{i}" for i in range(12)])
    data = list((tp.cast(Path, model.infra.uid_folder()) / "items").glob("b-*.dat"))
    if cluster in ("local", "debug"):
        assert len(data) == 1 + 3  # the first call's batch, then one per job (max_jobs=3)


def test_min_samples_per_job_bounds_the_jobs(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache", "cluster": "debug", "max_jobs": 10, "min_samples_per_job": 6})
    list(model.vectors([f"x{i}" for i in range(12)]))
    assert len(list((tp.cast(Path, model.infra.uid_folder()) / "items").glob("b-*.dat"))) == 2


@pytest.mark.parametrize("cluster", [None, "processpool", "local"])
def test_a_failing_item_fails_its_batch_naming_it_and_the_others_are_kept(tmp_path: Path, cluster: str | None) -> None:
    cache = tmp_path / "cache"
    items = [f"x{i}" for i in range(12)]
    model = Vectors(fail_on="x5", log=str(tmp_path), infra={"folder": cache, "cluster": cluster, "max_jobs": 3})
    with pytest.raises(MapItemError, match=r"item 'x5' \(key 'x5'\) failed: ValueError: cannot compute x5") as info:
        list(model.vectors(items))
    if cluster in (None, "local"):
        assert "cannot compute x5" in str(info.value) and "Traceback" in str(info.value)
    first = computed(tmp_path)
    assert "x5" not in first and len(first) >= 4  # what was yielded before, and the other jobs
    # fail_on is not in the uid: the next call computes only what is missing
    again = Vectors(log=str(tmp_path), infra={"folder": cache, "cluster": cluster, "max_jobs": 3})
    assert [o.tolist() for o in again.vectors(items)] == [expected(x).tolist() for x in items]
    assert sorted(computed(tmp_path)) == sorted(items)


def test_forbid_single_item_computation_raises_where_exca_raises(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache", "forbid_single_item_computation": True})
    with pytest.raises(RuntimeError, match="forbidden by 'infra.forbid_single_item_computation=True'"):
        list(model.vectors(["a"]))
    list(model.vectors(["a", "b"]))  # two missing: allowed
    list(model.vectors(["a"]))  # cached: allowed
    with pytest.raises(RuntimeError, match="single item 'c'"):
        list(model.vectors(["c", "c"]))  # one key


def test_read_only_names_the_first_missing_items_and_the_count(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    list(Vectors(infra={"folder": cache}).vectors(["a", "b"]))
    reader = Vectors(infra={"folder": cache, "mode": "read-only"})
    assert len(list(reader.vectors(["a", "b"]))) == 2
    items = ["a"] + [f"m{i}" for i in range(7)]
    with pytest.raises(RuntimeError, match=r"read-only.* 7 item\(s\) are missing.*'m0', 'm1', 'm2', 'm3', 'm4' and 2 more"):
        list(reader.vectors(items))
    with pytest.raises(RuntimeError, match="read-only"):  # nothing written, nowhere
        list(Vectors(infra={"folder": tmp_path / "other", "mode": "read-only"}).vectors(["a"]))
    assert not (tmp_path / "other").exists()


def test_force_recomputes_each_item_once_per_object(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["a", "b"]))
    forced = Vectors(log=str(tmp_path), infra={"folder": cache, "mode": "force"})
    list(forced.vectors(["a", "b"]))
    list(forced.vectors(["a", "b", "c"]))
    assert computed(tmp_path) == ["a", "b", "a", "b", "c"]
    list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["a", "b", "c"]))  # cached again
    assert len(computed(tmp_path)) == 5


def test_keep_in_ram_returns_the_same_objects(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache"})
    assert model.infra.keep_in_ram  # exca's default
    first = list(model.vectors(["a", "b"]))
    assert all(x is y for x, y in zip(first, model.vectors(["a", "b"])))
    other = Values(infra={"folder": tmp_path / "cache2", "keep_in_ram": False})
    one = list(other.values([2]))
    assert one[0] is not next(other.values([2]))


def test_without_folder_items_are_computed_here(tmp_path: Path) -> None:
    model = Vectors(log=str(tmp_path))
    assert [o.tolist() for o in model.vectors(["a", "bb", "a"])] == [expected(x).tolist() for x in ["a", "bb", "a"]]
    list(model.vectors(["a"]))  # keep_in_ram: not again
    assert computed(tmp_path) == ["a", "bb"]
    pool = Vectors(log=str(tmp_path / "p"), infra={"cluster": "threadpool", "keep_in_ram": False})
    (tmp_path / "p").mkdir()
    assert len(list(pool.vectors([f"x{i}" for i in range(9)]))) == 9


def test_wrong_yield_counts_are_errors(tmp_path: Path) -> None:
    class Short(pydantic.BaseModel):
        infra: MapInfra = MapInfra()

        @infra.apply(item_uid=str)
        def f(self, items: tp.Iterable[int]) -> tp.Iterator[int]:
            yield from list(items)[:-1]

    with pytest.raises(MapItemError, match="did not yield exactly once per item"):
        list(Short(infra={"folder": tmp_path / "c"}).f([1, 2, 3]))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the peer, exca 0.6.0, needs Python 3.11 (compared on 3.11 in the same test run)")
def test_long_keys_are_shortened_as_exca_does(tmp_path: Path) -> None:
    from exca.utils import ShortItemUid

    model = Vectors(infra={"folder": tmp_path / "cache"})
    long = "y" * 300 + "z"
    assert model.infra.item_keys([long]) == [ShortItemUid(str, 256)(long)]
    assert list(model.vectors([long]))[0][0] == 301


def test_progress_is_shown(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(10, "Vectors.vectors", every=0.0)
    with caplog.at_level(logging.INFO, logger="exca_hydra.map"):
        progress.advance(4)
        progress.advance(6)
    assert "Vectors.vectors: 10/10 items computed" in caplog.text


SCRIPT_MAP = '''
import sys, typing as tp
import numpy as np, pydantic
from exca_hydra import MapInfra

class Embed(pydantic.BaseModel):
    model: str = "small"
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def embed(self, items: tp.Iterable[str]) -> tp.Iterator[np.ndarray]:
        for item in items:
            yield np.full(4, len(item), dtype=np.float32)

if __name__ == "__main__":
    out = list(Embed(infra={"folder": sys.argv[1], "cluster": sys.argv[2]}).embed(["a", "bb", "ccc"]))
    print([float(o[0]) for o in out])
'''


@pytest.mark.parametrize("cluster", ["local", "debug", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_a_map_model_defined_in_the_script_runs_in_jobs(tmp_path: Path, cluster: str, request: pytest.FixtureRequest) -> None:
    """Found by the red team (F2): the README's MapInfra example as a script failed in every job
    process (KeyError on the method): how items are keyed was kept in the launching process only."""
    import subprocess

    if cluster == "slurm":
        request.getfixturevalue("slurm_cluster")  # fails in CI when Slurm is unreachable
    (tmp_path / "embed_app.py").write_text(SCRIPT_MAP)
    proc = subprocess.run([sys.executable, "embed_app.py", str(tmp_path / "cache"), cluster], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "[1.0, 2.0, 3.0]", proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["embed_app.Embed.embed,0"]


class Skipper(pydantic.BaseModel):
    """Yields one output too few ("fewer": item b skipped) or too many ("more")."""

    kind: str = "fewer"
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def f(self, items: tp.Iterable[str]) -> tp.Iterator[str]:
        items = list(items)
        items = [i for i in items if i != "b"] if self.kind == "fewer" else [*items, "extra"]
        for item in items:
            yield item.upper()


@pytest.mark.parametrize("kind", ["fewer", "more"])
def test_outputs_that_do_not_match_the_items_are_never_kept(tmp_path: Path, kind: str) -> None:
    """Found by the red team (F7): after "did not yield exactly once per item", the outputs were
    kept, and the next call served item b with c's output. None of that job's items is kept now."""
    for _ in range(2):
        with pytest.raises(MapItemError, match="did not yield exactly once per item.*none of this job's 3 items is kept"):
            list(Skipper(kind=kind, infra={"folder": tmp_path}).f(["a", "b", "c"]))
    with pytest.raises(RuntimeError, match="missing"):  # read-only: nothing was stored
        list(Skipper(kind=kind, infra={"folder": tmp_path, "mode": "read-only"}).f(["a"]))


def test_local_jobs_stop_when_their_launcher_is_killed(tmp_path: Path) -> None:
    """Found by the red team (F17): cluster="local" jobs outlived a launcher killed -9 and kept
    computing while the next call, finding the launcher's claims dead, computed every item again."""
    import os
    import signal
    import subprocess
    import time

    log = tmp_path / "log"
    log.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from map_models import Vectors; "
            f"list(Vectors(log={str(log)!r}, sleep=0.3, infra={{'folder': {str(tmp_path / 'cache')!r}, 'cluster': 'local', "
            f"'max_jobs': 2}}).vectors([f'i{{k}}' for k in range(40)]))")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    computed = log / "computed.log"
    deadline = time.time() + 60
    while (not computed.exists() or len(computed.read_text().split()) < 2) and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # the launcher only: its local jobs are other processes
    proc.wait()
    time.sleep(2.0)  # the jobs notice within half a second
    before = computed.read_text().split()
    time.sleep(1.5)
    assert computed.read_text().split() == before, "the jobs kept computing after their launcher died"
