"""Issue 24: `exca-hydra plot` and `exca-hydra timeline`, drawn from a real sweep's cache and
checked through matplotlib's own objects; reading the cache for them unpickles nothing."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")  # the [plot] extra, in the test extra
matplotlib.use("Agg")

from matplotlib.colors import to_rgba  # noqa: E402

from exca_hydra import plot as plotting  # noqa: E402
from exca_hydra import timeline as timelines  # noqa: E402
from exca_hydra.cli import main  # noqa: E402

APP = Path(__file__).parent / "apps" / "figures" / "app.py"
SWEEP = ("model=a,b", "lr=0.001,0.01,0.1,0.5,1.0")


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "EXCA_TEST_RELEASE": str(tmp / "release")}


def _ended(sweep: Path) -> int:
    record = sweep / ".exca" / "jobs.jsonl"
    return record.read_text().count('"ended"') if record.exists() else 0


def _outcomes(cache: Path) -> int:
    return len(list(cache.glob("*/*/outcome.json")))


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep killed (-9) while its two lr=1.0 jobs run: 6 completed, 2 failed, 2 without an
    outcome; then the same sweep again, released: 8 read from the cache, 2 computed."""
    tmp = tmp_path_factory.mktemp("figures")
    command = [sys.executable, str(APP), "-m", *SWEEP, f"infra.folder={tmp / 'cache'}"]
    proc = subprocess.Popen([*command, f"hydra.sweep.dir={tmp / 'killed'}"], cwd=tmp, env=_env(tmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 50
        while _ended(tmp / "killed") < 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)  # the 8 jobs' outcomes written, and seen by the launcher (its record)
        assert _outcomes(tmp / "cache") == 8 and _ended(tmp / "killed") == 8, "the sweep did not reach its two waiting jobs"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its jobs: no outcome for lr=1.0
        proc.wait()
    (tmp / "release").write_text("")
    again = subprocess.run([*command, f"hydra.sweep.dir={tmp / 'again'}"], cwd=tmp, env=_env(tmp),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "6 cached, 0 running, 2 to run (mode=cached), 2 failed last" in again.stdout, again.stdout + again.stderr
    return tmp


def _no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a figure unpickled a file")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_plot_of_a_killed_sweep_marks_failed_and_missing_points(sweeps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    cache = sweeps / "killed-copy"
    if not cache.exists():  # the cache as the killed sweep left it: the lr=1.0 entries without outcome
        shutil.copytree(sweeps / "cache", cache)
        for outcome in cache.glob("*/lr=1.0*/outcome.json"):
            outcome.unlink()
            (outcome.parent / "result.pkl").unlink()
    _no_unpickling(monkeypatch)
    data = plotting.series(cache, "lr", "result.acc", ["model"])
    assert list(data.groups) == ["a", "b"] and data.log_x and data.categories is None
    fig = plotting.draw(data, "lr", "result.acc", ["model"], "title")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "lr" and ax.get_ylabel() == "result.acc" and ax.get_xscale() == "log"
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    assert len(lines) == 2 and all(list(line.get_xdata()) == [0.001, 0.01, 0.1] for line in lines)
    a = next(line for line in lines if line.get_label() == "a")
    assert list(a.get_ydata()) == [0.88, 0.9, 0.88]
    marks = [c for c in ax.collections if len(c.get_offsets())]
    assert sorted(len(c.get_offsets()) for c in marks) == [1, 1, 1, 1]  # per model: 1 failed, 1 missing
    assert sorted(float(c.get_offsets()[0][0]) for c in marks) == [0.5, 0.5, 1.0, 1.0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["a", "b", "failed", "missing"] and ax.get_legend().get_title().get_text() == "model"
    assert plotting.describe(data) == "6 point(s) in 2 group(s), 2 failed (marked at the bottom), 2 missing (marked at the bottom)"


def test_plot_command_writes_png_and_svg_and_says_what_is_wrong(sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = sweeps / "cache"
    for name in ("sweep.png", "sweep.svg"):
        assert main(["plot", str(cache), "--x", "lr", "--y", "result.acc", "--by", "model", "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "sweep.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "result.acc vs lr" in svg
    out = capsys.readouterr().out
    assert "8 point(s) in 2 group(s), 2 failed" in out, out
    # a dict result needs its key; a column that does not exist; no output; a categorical x
    assert main(["plot", str(cache), "--x", "lr", "-o", str(tmp_path / "x.png")]) == 2
    assert "no column 'result'; the result columns: result.acc, result.loss" in capsys.readouterr().err
    assert main(["plot", str(cache), "--x", "lr", "--y", "result.acc"]) == 2
    assert "-o FILE.png" in capsys.readouterr().err
    assert main(["plot", str(cache), "--x", "lr", "--y", "result.acc", "-o", str(tmp_path / "x.jpg2")]) == 2
    assert main(["plot", str(cache), "--x", "model", "--y", "result.acc", "-o", str(tmp_path / "m.png")]) == 0
    data = plotting.series(cache, "model", "result.acc")
    assert data.categories == ["a", "b"] and not data.log_x


def test_without_matplotlib_one_line_says_what_to_install(sweeps: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; from exca_hydra.cli import main; "
            f"sys.exit(main(['plot', {str(sweeps / 'cache')!r}, '--x', 'lr', '--y', 'result.acc', '-o', 'x.png']))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=sweeps, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        "Figures need matplotlib, an optional extra: pip install 'exca-hydra[plot]'"), proc.stderr


def _bar_colours(ax: object) -> dict[str, int]:
    """Bars per colour name, from the axes' collections (one per colour, a rectangle per bar)."""
    counts: dict[str, int] = {}
    named = {to_rgba(colour): name for name, colour in timelines.COLOURS.items()}
    for collection in ax.collections:  # type: ignore[attr-defined]
        (colour,) = collection.get_facecolor()
        name = named[tuple(colour)]
        counts[name] = counts.get(name, 0) + len(collection.get_paths())
    return counts


def test_timeline_of_the_killed_sweep_shows_the_interrupted_jobs(sweeps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_unpickling(monkeypatch)
    found, without = timelines.bars(sweeps / "cache", sweeps / "killed")
    outcomes = sorted(bar.outcome for bar in found)
    assert outcomes == ["completed"] * 6 + ["failed"] * 2 + ["interrupted"] * 2 and without == 0
    assert all(bar.submitted <= bar.started <= bar.ended for bar in found), found
    fig = timelines.draw(found, "title")
    (ax,) = fig.axes
    counts = _bar_colours(ax)
    assert counts["completed"] == 6 and counts["failed"] == 2 and counts["interrupted"] == 2, counts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-3:] == ["completed", "failed", "interrupted"], legend
    assert ax.get_xlabel().startswith("time since the first submission (s;") and ax.get_title() == "title"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(label.startswith(("vm", os.uname().nodename, "not started")) for label in labels), labels


def test_timeline_of_the_rerun_shows_what_came_from_the_cache(sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found, _ = timelines.bars(sweeps / "cache", sweeps / "again")
    assert sorted(bar.outcome for bar in found) == ["cached"] * 8 + ["completed"] * 2
    assert main(["timeline", str(sweeps / "cache"), "--sweep", str(sweeps / "again"), "-o", str(tmp_path / "t.png")]) == 0
    out = capsys.readouterr().out
    assert "10 job(s): 2 completed, 8 cached" in out and "slowest: #4 model=a lr=1.0" in out or "slowest: #9" in out, out
    fig = timelines.draw(found, "t")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "from the cache (8)" in labels, labels
    # the whole cache, without a sweep: every outcome recorded, the latest per entry
    found, without = timelines.bars(sweeps / "cache")
    assert sorted(bar.outcome for bar in found) == ["completed"] * 8 + ["failed"] * 2 and without == 0


def test_outcome_records_when_and_where(sweeps: Path) -> None:
    for path in (sweeps / "cache").glob("*/*/outcome.json"):
        data = json.loads(path.read_text())
        assert data["submitted_at"] <= data["started_at"] <= data["finished_at"] if "submitted_at" in data else True
        assert abs(data["finished_at"] - data["started_at"] - data["duration"]) < 1e-3
        assert isinstance(data["pid"], int) and data["host"]


def test_local_jobs_are_packed_into_the_slots_they_ran_in() -> None:
    bar = timelines.Bar
    found = [bar("1", "h:1", 0, 0, 2, "completed"), bar("2", "h:2", 0, 0, 1, "completed"),
             bar("3", "h:3", 0, 1, 3, "failed"), bar("4", "h:4", 0, 2, 4, "completed"),
             bar("5", "12_0", 0, 5, 6, "completed"), bar("6", "12_10", 0, 5, 6, "completed"),
             bar("7", "12_2", 0, 5, 6, "completed")]  # fmt: skip
    rows = timelines.rows_of(found)
    assert [name for name, _ in rows] == ["12_0", "12_2", "12_10", "h slot 1", "h slot 2"]
    assert [[b.label for b in lane] for _, lane in rows[3:]] == [["2", "3"], ["1", "4"]]  # the first to end first
    text = timelines.describe(found)
    assert text.splitlines()[0] == "7 job(s): 6 completed, 1 failed" and "slowest: 1 on h:1, 2.0 s" in text, text


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_timeline_of_a_slurm_sweep_rows_per_worker_with_queue_time(tmp_path: Path) -> None:
    """Pull workers on the real Slurm: one row per worker task (<array>_<task>), each job queued
    from its submission (job.json's placeholder time, kept when the worker writes its own) to its start."""
    (tmp_path / "release").write_text("")
    command = [sys.executable, str(APP), "-m", "model=a,b", "lr=0.001,0.01,0.1,0.5", f"infra.folder={tmp_path / 'cache'}",
               "hydra/launcher=exca_slurm", "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert "2 of 8 job(s) failed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    found, _ = timelines.bars(tmp_path / "cache", tmp_path / "sweep")
    assert sorted(bar.outcome for bar in found) == ["completed"] * 6 + ["failed"] * 2
    workers = {bar.worker for bar in found}
    assert len(workers) <= 2 and all(w.split("_")[0].isdigit() and w.split("_")[1].isdigit() for w in workers), workers
    assert all(bar.submitted < bar.started <= bar.ended for bar in found), found  # Slurm's queue: > 0
    rows = timelines.rows_of(found)
    assert [name for name, _ in rows] == sorted(workers, key=lambda w: int(w.split("_")[1]))
    fig = timelines.draw(found, "slurm")
    counts = _bar_colours(fig.axes[0])
    assert counts["completed"] == 6 and counts["failed"] == 2 and counts["queued"] >= len(workers), counts


def test_odd_columns_and_a_folder_that_is_no_sweep(sweeps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A list-valued column groups and places points like any value; --sweep on a folder without
    the sweep's record says what it is, with exit code 2, no traceback."""
    rows = [{"method": "m", "uid": str(i), "status": "completed", "tags": [i % 2], "x": [i], "result": float(i)} for i in range(4)]
    import exca_hydra.plot as module

    original = module.rows
    module.rows = lambda folder, method=None: rows  # type: ignore[assignment]
    try:
        data = plotting.series(tmp_path, "x", "result", ["tags"])
    finally:
        module.rows = original  # type: ignore[assignment]
    assert list(data.groups) == ["[0]", "[1]"] and data.categories == ["[0]", "[1]", "[2]", "[3]"]
    assert main(["timeline", str(sweeps / "cache"), "--sweep", str(tmp_path), "-o", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err
    assert "holds no record of an exca launcher's sweep" in err and "Traceback" not in err, err


def test_a_sweep_keeps_its_own_outcomes_after_a_later_run_replaced_them(sweeps: Path) -> None:
    """Found by the red team (redteam-look F1): `timeline --sweep A` joined A's plan with the
    entry's current outcome, written by a later retry: a fabricated queue time (the gap between
    the sweeps) and the later run's status. A's own record (its end, its status) stands now.
    (Runs last: it adds a retry sweep to the module's cache.)"""
    command = [sys.executable, str(APP), "-m", *SWEEP, f"infra.folder={sweeps / 'cache'}", "hydra.sweeper.mode=retry",
               f"hydra.sweep.dir={sweeps / 'retry'}"]  # fmt: skip
    start = time.time()
    subprocess.run(command, cwd=sweeps, env=_env(sweeps), capture_output=True, text=True, timeout=120)
    found, _ = timelines.bars(sweeps / "cache", sweeps / "killed")
    failed = [bar for bar in found if bar.outcome == "failed"]
    assert len(failed) == 2 and all(bar.worker == "outcome replaced since" and bar.ended < start for bar in failed), failed
    assert all(bar.started - bar.submitted < 30 for bar in found), found  # no queue across sweeps


def test_a_completed_job_without_a_number_is_marked_not_blocking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the red team (redteam-look F7, F8): one job returning None stopped the whole plot with
    a wrong hint; --min --max together were accepted; --best on a text column printed nothing."""
    import exca_hydra.plot as module

    rows = [{"method": "m", "uid": str(i), "status": "completed", "lr": 0.1 * (i + 1), "result.acc": (None if i == 3 else float(i))}
            for i in range(4)]  # fmt: skip
    original = module.rows
    module.rows = lambda folder, method=None: rows  # type: ignore[assignment]
    try:
        data = plotting.series(tmp_path, "lr", "result.acc")
        assert plotting.describe(data) == "3 point(s) in 1 group(s), 1 missing (marked at the bottom)"
        for row in rows:
            row["result.acc"] = None
        with pytest.raises(ValueError, match="no completed job has a number in result.acc"):
            plotting.series(tmp_path, "lr", "result.acc")
    finally:
        module.rows = original  # type: ignore[assignment]
    with pytest.raises(SystemExit):
        main(["table", str(tmp_path), "--best", "result", "--min", "--max"])
    assert "not allowed with argument" in capsys.readouterr().err
    from exca_hydra.cache.store import Entry

    entry = Entry(tmp_path / "m.T.f,0" / "kind=a-0123456789abcdef")
    entry.write_configs({"kind": "a"}, {"kind": "a"})
    entry.write_result(1.0)
    assert main(["table", str(tmp_path), "--best", "kind", "--max"]) == 2
    assert "no row has a number in column 'kind'" in capsys.readouterr().err
    assert main(["table", str(tmp_path), "--best", "result", "--max"]) == 0


def test_entries_without_a_value_at_x_keep_the_axis_numeric(tmp_path: Path) -> None:
    """Found by the red team (redteam-look F13, F10): entries written before a field existed have
    no value there; one such row turned a numeric x axis into labels ("None" among the numbers)."""
    import pydantic

    from exca_hydra import TaskInfra

    class Fit(pydantic.BaseModel):
        lr: float = 0.1
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> float:
            return self.lr * 10

    class Fit2(pydantic.BaseModel):  # a field added since
        lr: float = 0.1
        extra: float = 1.0
        infra: TaskInfra = TaskInfra()

        @infra.apply
        def run(self) -> float:
            return self.lr * 10 + self.extra

    Fit.__qualname__ = Fit2.__qualname__ = "Fit"
    for lr in (0.1, 0.2):
        Fit(lr=lr, infra={"folder": tmp_path}).run()
    for extra in (2.0, 300.0):
        Fit2(extra=extra, infra={"folder": tmp_path}).run()
    data = plotting.series(tmp_path, "extra", "result")
    assert data.categories is None and data.log_x and data.no_x == 2
    assert sorted(p.x for group in data.groups.values() for p in group) == [2.0, 300.0]
    assert plotting.describe(data).endswith("2 without a value at x (not drawn)")
