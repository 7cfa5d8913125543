"""MapInfra's item store (issue 23): batches and an index, memory maps, JSON in the index, crashes,
the index loaded once per process, trust, and two processes asking for overlapping items."""

from __future__ import annotations

import json
import time
import mmap
import os
import subprocess
import sys
import textwrap
import typing as tp
from pathlib import Path

import numpy as np
import pytest

from exca_hydra.cache.errors import CacheError
from exca_hydra.cache.itemclaims import ItemClaims
from exca_hydra.cache.itemstore import ItemStore
from map_models import Values, Vectors


def computed(folder: Path) -> list[str]:
    path = folder / "computed.log"
    return path.read_text().split() if path.exists() else []


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)


def items_dir(model: tp.Any) -> Path:
    return tp.cast(Path, model.infra.uid_folder()) / "items"


def test_one_data_file_per_batch_and_one_index_never_a_file_per_item(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache", "keep_in_ram": False})
    list(model.vectors([f"x{i}" for i in range(10_000)]))
    names = sorted(p.name for p in items_dir(model).iterdir())
    assert len(names) == 2 and names[0].startswith("b-") and names[1].startswith("index-"), names
    list(model.vectors([f"y{i}" for i in range(100)]))  # a second batch: one more data file, same index
    assert len(list(items_dir(model).iterdir())) == 3
    files = sum(len(f) for _, _, f in os.walk(tmp_path / "cache"))
    assert files == 5  # + config.yaml and uid.yaml


def test_arrays_are_read_back_memory_mapped(tmp_path: Path) -> None:
    model = Vectors(infra={"folder": tmp_path / "cache", "keep_in_ram": False})
    list(model.vectors(["a", "bb"]))
    out = next(Vectors(infra={"folder": tmp_path / "cache"}).vectors(["bb"]))
    assert out.tolist() == (np.arange(16, dtype=np.float32) + 2).tolist() and out.dtype == np.float32
    assert not out.flags.writeable and not out.flags.owndata
    base = out
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap)


def test_python_values_pickled_per_batch_json_values_in_the_index(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    items = list(range(20))
    first = list(Values(infra={"folder": cache}).values(items))
    index = next(items_dir(Values(infra={"folder": cache})).glob("index-*.jsonl")).read_text()
    line = json.loads(index)
    assert '"name":"item 5"' in index and "bytes" not in index  # dicts in the index; tuples pickled
    assert line["k"].count("p") == 4 + 2  # the tuples and the NaNs (no NaN in JSON)
    assert len(list(items_dir(Values(infra={"folder": cache})).glob("b-*.dat"))) == 1
    code = f"""
        import pickle, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from map_models import Values
        out = list(Values(infra={{"folder": {str(cache)!r}, "mode": "read-only"}}).values(range(20)))
        sys.stdout.buffer.write(pickle.dumps([o.tolist() if hasattr(o, "tolist") else o for o in out]))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    import pickle

    again = pickle.loads(proc.stdout)
    for a, b in zip(first, again):
        a = a.tolist() if hasattr(a, "tolist") else a
        assert a == b or (a != a and b != b), (a, b)  # NaN == NaN here
    assert isinstance(again[1], tuple) and again[1][1] == {1}


def test_a_crash_mid_batch_loses_only_that_batch(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import exca_hydra.map.batch as batch
        batch.FLUSH_EVERY_S = 0.0  # every item is its own batch
        from map_models import Vectors
        list(Vectors(kill_on="x5", log={str(tmp_path)!r}, infra={{"folder": {str(cache)!r}}}).vectors(["x%d" % i for i in range(10)]))
    """
    proc = run_python(code)
    assert proc.returncode == -9, proc.stderr
    assert computed(tmp_path) == [f"x{i}" for i in range(5)]
    model = Vectors(log=str(tmp_path), infra={"folder": cache})
    # a cut index line and a half-written data file, as a crash leaves them: ignored
    index = next(items_dir(model).glob("index-*.jsonl"))
    with index.open("ab") as f:
        f.write(b'{"t":1,"f":"b-cut.dat","u":["x9"')
    (items_dir(model) / ".tmp-b-cut.dat").write_bytes(b"\0" * 10)
    store = ItemStore(tp.cast(Path, model.infra.uid_folder()))
    store.refresh()
    assert sorted(store.index) == [f"x{i}" for i in range(5)]
    out = list(model.vectors([f"x{i}" for i in range(10)]))
    assert [o[0] for o in out] == [2.0] * 10
    assert computed(tmp_path) == [f"x{i}" for i in range(10)]  # only the lost ones again


def test_the_index_is_loaded_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    list(Vectors(infra={"folder": cache}).vectors([f"x{i}" for i in range(50)]))
    reads: list[str] = []
    original = ItemStore._read_index

    def counting(self: ItemStore, name: str) -> None:
        reads.append(name)
        original(self, name)

    monkeypatch.setattr(ItemStore, "_read_index", counting)
    monkeypatch.setattr("exca_hydra.cache.itemstore._STORES", {})
    for _ in range(3):
        out = list(Vectors(infra={"folder": cache, "keep_in_ram": False}).vectors([f"x{i}" for i in range(50)]))
        assert len(out) == 50
    assert len(reads) == 1  # loaded by the first call; later reads are look-ups


def test_items_another_process_wrote_are_found(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = Vectors(log=str(tmp_path), infra={"folder": cache})
    list(model.vectors(["a"]))  # this process loaded the index
    code = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from map_models import Vectors
        list(Vectors(log={str(tmp_path)!r}, infra={{"folder": {str(cache)!r}}}).vectors(["b", "c"]))
    """
    assert run_python(code).returncode == 0
    assert len(list(Vectors(log=str(tmp_path), infra={"folder": cache}).vectors(["a", "b", "c"]))) == 3
    assert computed(tmp_path) == ["a", "b", "c"]


def test_pickled_items_obey_the_trust_rules(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    list(Values(infra={"folder": cache}).values([1]))  # a tuple: pickled
    data = next(items_dir(Values(infra={"folder": cache})).glob("b-*.dat"))
    data.chmod(0o666)
    code = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from map_models import Values
        list(Values(infra={{"folder": {str(cache)!r}}}).values([1]))
    """
    proc = run_python(code)
    assert proc.returncode != 0 and "Refusing to load" in proc.stderr and "writable by everyone" in proc.stderr
    data.chmod(0o644)
    assert run_python(code).returncode == 0


def test_claims_split_overlapping_keys_and_stale_claims_are_taken_over(tmp_path: Path) -> None:
    first, second = ItemClaims(tmp_path), ItemClaims(tmp_path)
    mine, others = first.take(["a", "b", "c"])
    assert (mine, others) == (["a", "b", "c"], [])
    mine, others = second.take(["b", "c", "d"])
    assert (mine, others) == (["d"], ["b", "c"])
    first.release()
    assert second.held() == set() and first.held() == {"d"}
    second.release()
    # a claim whose process is gone (same host) is stale
    dead = tmp_path / "claims" / "dead.json"
    dead.write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 12345, "time": 0, "keys": ["a"]}))
    assert ItemClaims(tmp_path).take(["a"]) == (["a"], [])
    assert not dead.exists()


def test_a_half_written_lock_is_taken_over_when_old_and_a_fresh_one_is_kept(tmp_path: Path) -> None:
    """The item claims' lock: a holder that died mid-write leaves invalid JSON; past the stale age
    it is taken over (it used to count as fresh forever: a hang). Only the lock judged dead goes."""
    from exca_hydra.cache import itemclaims, lease

    claims = ItemClaims(tmp_path)
    claims.take(["z"])  # makes the folders
    claims.release()
    lock = tmp_path / itemclaims.CLAIMS / itemclaims.LOCK
    lock.write_text('{"host": "vm", "pi')
    old = time.time() - 2 * itemclaims.LOCK_STALE_S
    os.utime(lock, (old, old))
    assert ItemClaims(tmp_path).take(["a"]) == (["a"], [])  # returns: the stale lock went
    assert not lock.exists()
    fresh = tmp_path / "fresh"
    fresh.write_text("{}")
    judged = fresh.stat().st_ino
    fresh.unlink()
    fresh.write_text('{"new": 1}')  # another holder's, created after the judgement
    if fresh.stat().st_ino != judged:  # (the file system may reuse the inode: nothing to test then)
        assert lease.move_aside(fresh, judged=judged) is False and fresh.read_text() == '{"new": 1}'


def test_two_processes_with_overlapping_items_compute_each_item_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from map_models import Vectors
        start, cluster = int(sys.argv[1]), sys.argv[2]
        items = ["x%d" % i for i in range(start, start + 60)]
        infra = {{"folder": {str(cache)!r}, "cluster": None if cluster == "none" else cluster, "max_jobs": 2}}
        out = list(Vectors(sleep=0.02, log={str(tmp_path)!r}, infra=infra).vectors(items))
        assert [o[0] for o in out] == [len(x) for x in items]
        print("ok")
    """))
    procs = [subprocess.Popen([sys.executable, str(script), str(start), cluster], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
             for start, cluster in ((0, "none"), (30, "processpool"), (15, "none"))]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "ok" in out, err
    done = computed(tmp_path)
    assert sorted(done) == sorted(f"x{i}" for i in range(90)), "an item was computed twice or not at all"


def test_structured_arrays_keep_their_fields_and_old_fieldless_entries_are_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the red team: a structured array was stored raw under its dtype's text (|V12) and
    came back as bytes without its fields, silently. Now pickled; an index line an older version
    wrote that way is not served: the item is computed again, and the log says so."""
    (tmp_path / "new").mkdir()  # the entry's folder (MapInfra makes it with its configs)
    store = ItemStore(tmp_path / "new")
    pair = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    pair["a"], pair["b"] = 3, 0.5
    store.write([("s", pair), ("s2", pair.copy()), ("v", np.zeros(2, dtype="V4"))])
    read = ItemStore(tmp_path / "new").reader()
    for key in ("s", "s2"):
        back = read(key)
        assert back.dtype == pair.dtype and back["a"].tolist() == [3, 3] and back["b"].tolist() == [0.5, 0.5]
    assert read("v").dtype == np.dtype("V4")
    # what the older version wrote: the same bytes, indexed as a raw |V12 stack
    old = tmp_path / "old"
    (old / "items").mkdir(parents=True)
    data = pair.tobytes() * 2
    (old / "items" / "b-old").write_bytes(data)
    line = {"t": time.time(), "f": "b-old", "s": ["|V12", [2], 0, 2], "k": ["r", "r"], "u": ["x", "y"]}
    (old / "items" / "index-old.jsonl").write_text(json.dumps(line) + "\n")
    with caplog.at_level("WARNING"):
        fresh = ItemStore(old)
        fresh.refresh()
    assert fresh.missing(["x", "y"]) == ["x", "y"], "fieldless raw items must be computed again"
    assert "stored without its fields" in caplog.text


def test_a_full_disk_says_so_and_keeps_what_was_stored(tmp_path: Path) -> None:
    """Found by the red team (F3): a write that fails (here: the file size limit, as a full disk
    would) raised "TypeError: 'NoneType' object is not subscriptable"; now the error names the
    store and the cause, blames no item, and the items stored before stay readable."""
    code = f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from map_models import Vectors
        from exca_hydra.map.batch import MapItemError

        cache = {str(tmp_path / "cache")!r}
        first = list(Vectors(infra={{"folder": cache}}).vectors(["a", "b"]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        try:
            list(Vectors(infra={{"folder": cache}}).vectors([f"x{{i}}" for i in range(2_000)]))
        except MapItemError as e:
            print("ERROR", e)
        again = list(Vectors(infra={{"folder": cache, "mode": "read-only"}}).vectors(["a", "b"]))
        print("KEPT", all((x == y).all() for x, y in zip(first, again)))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    error = next(line for line in proc.stdout.splitlines() if line.startswith("ERROR"))
    assert "could not store" in error and "File too large" in error and "items" in error, proc.stdout
    assert "failed: " not in error.split("could not store")[0].split("job 0")[-1], error  # no item blamed
    assert "KEPT True" in proc.stdout, proc.stdout


def test_changing_a_returned_output_changes_no_later_read(tmp_path: Path) -> None:
    """Found by the red team (F6): a JSON-able output was the object the process's index held,
    so changing it changed what every later read returned (a new object, keep_in_ram=False too)."""
    first = list(Values(infra={"folder": tmp_path}).values([0, 5]))  # dicts, stored in the index
    assert first[0]["tags"] == ["a", "b"]
    first[0]["tags"].append("poisoned")
    again = list(Values(infra={"folder": tmp_path}).values([0, 5]))  # computed by the first: read
    assert again[0]["tags"] == ["a", "b"], again
    again[1]["tags"].append("poisoned")
    assert list(Values(infra={"folder": tmp_path}).values([5]))[0]["tags"] == ["a", "b"]


def test_a_cleared_entry_is_computed_again_and_never_comes_back_as_a_ghost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the red team (F11, F12): after `exca-hydra clear --uid`, a running process kept
    serving the removed items (its index in memory), and a computation running during the clear
    re-created the folder without uid.yaml: items nobody could list, clear or verify, served to
    read-only callers. Now: the entry is read again (uid.yaml's identity), a writer never re-creates
    the entry, and items without uid.yaml are never served."""
    import shutil
    import threading

    log = tmp_path / "log"
    log.mkdir()
    model = Vectors(log=str(log), infra={"folder": tmp_path / "cache", "keep_in_ram": False})
    list(model.vectors(["a", "b"]))
    entry = tp.cast(Path, model.infra.uid_folder())
    shutil.rmtree(entry)  # what `exca-hydra clear --uid` does
    again = Vectors(log=str(log), infra={"folder": tmp_path / "cache", "keep_in_ram": False})
    list(again.vectors(["a", "b"]))
    assert computed(log) == ["a", "b", "a", "b"] and (entry / "uid.yaml").exists()
    # cleared while computing: the writer fails, naming why, and re-creates nothing
    slow = Vectors(log=str(log), sleep=0.05, infra={"folder": tmp_path / "cache", "keep_in_ram": False})
    remover = threading.Timer(0.5, shutil.rmtree, [entry])
    remover.start()
    with pytest.raises(Exception, match="removed while they were computed"):
        list(slow.vectors([f"s{i}" for i in range(40)]))
    remover.join()
    assert not entry.exists()
    # items whose uid.yaml is gone (an older version's ghost): not served, read-only or not
    list(Vectors(infra={"folder": tmp_path / "cache"}).vectors(["g"]))
    (entry / "uid.yaml").unlink()
    (entry / "config.yaml").unlink()
    with caplog.at_level("WARNING"), pytest.raises(RuntimeError, match="missing"):
        list(Vectors(infra={"folder": tmp_path / "cache", "mode": "read-only"}).vectors(["g"]))
    assert "not served" in caplog.text
    list(Vectors(log=str(log), infra={"folder": tmp_path / "cache"}).vectors(["g"]))
    assert computed(log)[-1] == "g" and (entry / "uid.yaml").exists()
    assert [p.name.startswith("items.orphaned-") for p in entry.iterdir()].count(True) == 1


def test_a_damaged_or_missing_array_batch_names_the_file_and_the_way_out(tmp_path: Path) -> None:
    """Found by the red team (F9): a cut numpy batch gave a bare "buffer is smaller than requested
    size", a removed one a bare FileNotFoundError; now the CacheError pickled batches give."""
    for damage in ("cut", "removed"):
        folder = tmp_path / damage
        list(Vectors(infra={"folder": folder}).vectors(["a", "b"]))
        (batch,) = (folder).glob("*/*/items/b-*.dat")
        batch.write_bytes(b"12345") if damage == "cut" else batch.unlink()
        code = f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from map_models import Vectors
            from exca_hydra.cache.errors import CacheError
            try:
                list(Vectors(infra={{"folder": {str(folder)!r}}}).vectors(["a"]))
            except CacheError as e:
                print("CacheError", e)
            print(len(list(Vectors(infra={{"folder": {str(folder)!r}, "mode": "force"}}).vectors(["a"]))))
        """
        proc = run_python(code)
        assert f"CacheError Item 'a' in {batch} is unreadable" in proc.stdout and "mode='force'" in proc.stdout, proc.stdout + proc.stderr
        assert proc.stdout.strip().endswith("1"), proc.stdout + proc.stderr


def test_a_miss_in_a_cache_that_cannot_be_written_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the red team's notes: on a read-only filesystem a miss raised a raw OSError from the
    claims' lock; now the error says the cache is not writable and what mode='read-only' does.
    (The filesystem's refusal is raised where it would come from: mounting one needs privileges.)"""
    import errno

    from exca_hydra.cache.errors import CacheNotWritable

    list(Vectors(infra={"folder": tmp_path}).vectors(["a"]))

    def refuse(self: tp.Any, keys: tp.Any) -> tp.Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ItemClaims, "take", refuse)
    assert len(list(Vectors(infra={"folder": tmp_path}).vectors(["a"]))) == 1  # a hit needs no claim
    with pytest.raises(CacheNotWritable, match="not writable \\(Read-only file system\\); mode='read-only' serves"):
        list(Vectors(infra={"folder": tmp_path}).vectors(["a", "b"]))
