"""Faults (issue 7): concurrent sweeps, crashes while writing, corrupted entries."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exca_hydra.cache.store import Entry
from fault_models import Slow

HERE = Path(__file__).resolve().parent


def _python(code: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EXCA_TEST_DIR": str(tmp_path), "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path)


@pytest.mark.parametrize("cluster", [None, "local"])
def test_concurrent_overlapping_sweeps_compute_each_uid_once(
    tmp_path: Path, cluster: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    ranges = [list(range(0, 8)), list(range(4, 12)), list(range(2, 10)), list(range(0, 12, 2))]
    procs = [
        _python(f"import fault_models; fault_models.sweep({str(folder)!r}, {xs}, {cluster!r})", tmp_path)
        for xs in ranges
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    for x in range(12):
        calls = (tmp_path / f"calls-{x}").read_text().splitlines()
        assert len(calls) == 1, (x, calls)  # computed exactly once across the 4 processes
    monkeypatch.setenv("EXCA_TEST_DIR", str(tmp_path))
    assert all(Slow(x=x, infra={"folder": folder}).infra.status() == "completed" for x in range(12))
    assert not list(folder.rglob("claim.json"))  # every claim released


def test_a_crash_while_writing_never_leaves_a_readable_partial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    rng = random.Random(0)
    killed = 0
    for round_ in range(8):
        code = (
            "import fault_models\n"
            f"for x in range({round_ * 100}, {round_ * 100 + 100}):\n"
            f"    fault_models.Slow(x=x, sleep_s=0, size=4_000_000, infra={{'folder': {str(folder)!r}}}).compute()\n"
        )
        proc = _python(code, tmp_path)
        time.sleep(rng.uniform(0.4, 1.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 6  # the kills did land during the writes
    entries = [Entry(p) for p in folder.glob("*/*") if p.is_dir()]
    assert entries
    monkeypatch.setenv("EXCA_TEST_DIR", str(tmp_path))
    for entry in entries:
        if entry.has_result():  # a result file is whole or absent
            value = entry.load_result()
            assert len(value) == 4_000_000 and len(set(value)) == 1
    # a killed computation is recomputed by the next run, from scratch
    x = next(x for x in range(1200) if not Slow(x=x, size=4_000_000, sleep_s=0, infra={"folder": folder}).infra.uid_folder().joinpath("result.pkl").exists() and (tmp_path / f"calls-{x}").exists())
    task = Slow(x=x, size=4_000_000, sleep_s=0, infra={"folder": folder})
    assert task.infra.status() == "not submitted"  # the dead process's claim is stale
    assert task.compute() == bytes([x]) * 4_000_000
    assert pickle.loads((task.infra.uid_folder() / "result.pkl").read_bytes()) == task.compute()


@pytest.mark.parametrize("sweeper", ["basic", "exca"])
def test_concurrent_cli_sweeps_compute_each_uid_once(tmp_path: Path, sweeper: str) -> None:
    app = HERE / "apps" / "trainer" / "app.py"
    log = tmp_path / "ran.txt"
    env = {**os.environ, "EXCA_HYDRA_CACHE": str(tmp_path / "cache"), "EXCA_TEST_LOG": str(log)}
    sweeps = ["lr=0.1,0.2,0.3,0.4", "lr=0.3,0.4,0.6,0.7", "lr=0.1,0.4,0.7,0.8"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(app), "-m", f"hydra/sweeper={sweeper}", "model=conv", values,
             f"hydra.sweep.dir={tmp_path / f'sweep{i}'}"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        for i, values in enumerate(sweeps)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err.decode()[-2000:] for _, err in outputs]
    computed = [line.split()[-1] for line in log.read_text().splitlines()]
    assert sorted(computed) == sorted(set(computed))  # each uid computed by one process only
    assert set(computed) == {f"lr={lr}" for lr in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8)}


def test_forked_jobs_die_with_a_killed_launcher(tmp_path: Path) -> None:
    """kill -9 of an exca_local launcher: its forked jobs die too (their claims name it), and
    the re-run computes each job once, none beside an orphan."""
    import json

    app = Path(__file__).resolve().parent / "apps" / "jobenv" / "app.py"
    seen, release = tmp_path / "seen", tmp_path / "release"
    seen.mkdir()
    (tmp_path / "snap_code.py").write_text('VALUE = "v"\n')  # what the lazy job imports
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "EXCA_TEST_LOG": str(seen), "EXCA_TEST_RELEASE": str(release), "PYTHONPATH": path}
    cmd = [sys.executable, str(app), "-m", "x=1,2", "action=lazy", f"hydra.launcher.folder={tmp_path / 'cache'}"]
    first = subprocess.Popen([*cmd, f"hydra.sweep.dir={tmp_path / 'one'}"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 60
    while not Path(str(release) + ".waiting").exists():
        assert time.time() < deadline and first.poll() is None, "no job started"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    release.touch()  # a surviving orphan would now finish and report
    time.sleep(3)
    assert list(seen.iterdir()) == []
    again = subprocess.run([*cmd, f"hydra.sweep.dir={tmp_path / 'two'}"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "2 completed" in again.stdout + again.stderr
    assert sorted(json.loads(p.read_text())["num"] for p in seen.iterdir()) == [0, 1]
