"""Issue 15: outcome.json (status, duration, a preview of the result), `exca-hydra show`'s
preview, `exca-hydra table` and `exca_hydra.results`, all without unpickling."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
import typing as tp
from pathlib import Path

import pydantic
import pytest

import exca_hydra
from exca_hydra import TaskInfra
from exca_hydra.cli import main
from exca_hydra.cache.store import Entry, preview

METHOD = "test_results.Train.fit,0"


class Train(pydantic.BaseModel):
    lr: float = 0.1
    layers: int = 2
    name: str = "base"
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def fit(self) -> dict[str, tp.Any]:
        if self.name == "broken":
            raise ValueError("diverged")
        return {"loss": round(1 / self.layers, 3), "metrics": {"acc": self.lr * 2}, "weights": list(range(100))}


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_preview_of_a_result() -> None:
    assert preview(3) == 3 and preview(0.5) == 0.5 and preview(None) is None and preview(True) is True
    assert preview("short") == "short" and len(preview("x" * 500)) == 80
    assert preview({"a": {"b": 1, "c": "x"}, "d": [1, 2]}) == {"a.b": 1, "a.c": "x", "d": "[1, 2]"}
    assert preview(Weird()) == "<Weird>" and preview({"w": Weird()}) == {"w": "<Weird>"}
    long = preview(list(range(10_000)))
    assert isinstance(long, str) and long.startswith("[0, 1, 2") and len(long) <= 80
    assert len(preview({f"k{i}": i for i in range(500)})) == 51  # 50 keys and "..."
    loop: dict[str, tp.Any] = {}
    loop["self"] = loop
    assert isinstance(preview(loop), dict)
    np = pytest.importorskip("numpy")
    assert preview({"n": np.int64(3), "f": np.float32(0.5)}) == {"n": 3, "f": 0.5}
    assert json.dumps(preview({"n": np.int64(3)}))


def test_outcome_is_written_with_the_result(tmp_path: Path) -> None:
    Train(layers=4, infra={"folder": tmp_path}).fit()
    entry = Entry(Train(layers=4, infra={"folder": tmp_path}).infra.uid_folder())
    outcome = json.loads(entry.path("outcome.json").read_text())
    assert outcome["status"] == "completed" and 0 <= outcome["duration"] < 60, outcome
    assert outcome["preview"] == {"loss": 0.25, "metrics.acc": 0.2, "weights": "[0, 1, 2, 3, 4, 5, ...]"}
    assert not [p.name for p in entry.folder.iterdir() if p.name.startswith(".tmp")]  # atomic
    # a result whose repr raises is stored all the same
    weird = Entry(tmp_path / "w,0" / "x")
    weird.write_result(Weird())
    assert weird.read_outcome()["preview"] == "<Weird>" and weird.has_result()  # type: ignore[index]
    # a failure: its outcome too, and clear() forgets it
    with pytest.raises(ValueError):
        Train(name="broken", infra={"folder": tmp_path}).fit()
    failed = Entry(Train(name="broken", infra={"folder": tmp_path}).infra.uid_folder())
    assert failed.read_outcome()["status"] == "failed"  # type: ignore[index]
    assert failed.read_outcome()["preview"] == "ValueError: diverged"  # type: ignore[index]
    failed.clear()
    assert failed.read_outcome() is None


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    for layers, lr in ((1, 0.1), (4, 0.1), (2, 0.3)):
        Train(layers=layers, lr=lr, infra={"folder": folder}).fit()
    with pytest.raises(ValueError):
        Train(name="broken", infra={"folder": folder}).fit()
    return folder


def test_show_prints_the_preview_without_unpickling(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = Train(layers=4, infra={"folder": cache}).infra.uid_folder()
    os.chmod(entry / "result.pkl", 0)  # unreadable, for anyone but root: not needed anyway
    assert main(["show", str(entry)]) == 0
    out = capsys.readouterr().out
    assert "preview: loss=0.25, metrics.acc=0.2, weights=[0, 1, 2" in out and "duration: " in out, out
    (entry / "outcome.json").unlink()  # an entry written before outcome.json existed
    assert main(["show", str(entry)]) == 0
    assert "preview: no preview" in capsys.readouterr().out
    failed = Train(name="broken", infra={"folder": cache}).infra.uid_folder()
    assert main(["show", str(failed)]) == 0
    assert "error:   ValueError: diverged" in capsys.readouterr().out


def test_results_rows(cache: Path) -> None:
    rows = exca_hydra.results(cache, sort="layers")
    columns = ["method", "uid", "status", "duration", "lr", "layers", "name", "result.loss", "result.metrics.acc",
               "result.weights", "error", "finished", "host", "job_id"]  # fmt: skip
    assert all(sorted(row) == sorted(columns) for row in rows), rows[0]
    by_layers = {row["layers"]: row for row in rows}
    assert by_layers[4]["result.loss"] == 0.25 and by_layers[4]["status"] == "completed"
    # every field's value, defaults included (issue 22: lr=0.1 and layers=2 are defaults), in the model's order
    assert by_layers[4]["method"] == METHOD and by_layers[4]["lr"] == 0.1 and by_layers[1]["name"] == "base"
    assert isinstance(by_layers[4]["duration"], float)
    assert by_layers[4]["host"] == socket.gethostname() and by_layers[4]["job_id"] is None  # not a Slurm job
    assert by_layers[4]["finished"].startswith(time.strftime("%Y-"))
    # sorted by a column (the default-valued rows included); -column descending, missing values last
    assert [row["layers"] for row in rows] == [1, 2, 2, 4]
    assert [row["result.loss"] for row in exca_hydra.results(cache, sort="-result.loss")] == [1.0, 0.5, 0.25, None]
    failed = exca_hydra.results(cache, status="failed")
    assert [(row["name"], row["error"]) for row in failed] == [("broken", "ValueError: diverged")]
    assert list(failed[0]) == ["method", "uid", "status", "duration", "lr", "layers", "name", "error", "finished", "host", "job_id"]
    assert len(exca_hydra.results(cache, method="Train.fit")) == 4 and exca_hydra.results(cache, method="other") == []
    assert len(exca_hydra.results(cache, method=METHOD)) == 4
    with pytest.raises(ValueError, match="no column 'nope'"):
        exca_hydra.results(cache, sort="nope")


def test_results_as_a_data_frame(cache: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = exca_hydra.results(cache, as_frame=True, sort="layers")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert list(frame.columns[:4]) == ["method", "uid", "status", "duration"]
    assert frame["result.loss"].iloc[0] == 1.0
    assert str(frame["layers"].dtype) == "int64" and list(frame["layers"]) == [1, 2, 2, 4]  # no NaN: defaults filled


def test_table_command(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", str(cache), "--status", "completed", "--sort", "result.loss"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| method | uid | status | duration | lr | layers |") and "| result.loss |" in lines[0]
    assert lines[0].endswith("| finished | host | job_id |") and " s | 0.1 | " in lines[2]  # a duration for people
    assert lines[1].startswith("| --- |") and len(lines) == 5
    assert "| 0.25 |" in lines[2] and "| 0.3 |" in lines[3]  # loss 0.25 first; then lr=0.3's row

    assert main(["table", str(cache), "--format", "csv", "--method", "fit"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 4 and {row["status"] for row in table} == {"completed", "failed"}
    assert {row["name"] for row in table} == {"base", "broken"}

    assert main(["table", str(cache), "--format", "json", "--status", "failed"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["name"] == "broken" and rows[0]["error"] == "ValueError: diverged"

    assert main(["table", str(cache), "--sort", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["table", str(cache / "nothing-here")]) == 0
    assert capsys.readouterr().out.startswith("| method | uid | status | duration |")


def test_durations_for_people() -> None:
    from exca_hydra.table import human_duration

    assert [human_duration(s) for s in (0.0123, 4.24, 42.4, 185, 7800, None)] == [
        "0.012 s", "4.2 s", "42 s", "3 min 05 s", "2 h 10 min", ""]  # fmt: skip


class Seeded(pydantic.BaseModel):
    seed: int = 0
    scale: float = 1.0
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> float:
        return self.seed * self.scale


def test_a_default_zero_stays_an_integer_in_the_frame(tmp_path: Path) -> None:
    """Issue 22: seed=0 (the default) was NaN and turned the column into floats."""
    pd = pytest.importorskip("pandas")
    for seed in (0, 3):
        Seeded(seed=seed, infra={"folder": tmp_path}).run()
    frame = exca_hydra.results(tmp_path, as_frame=True, sort="seed")
    assert list(frame["seed"]) == [0, 3] and str(frame["seed"].dtype) == "int64"
    assert list(frame["scale"]) == [1.0, 1.0] and "infra.cluster" not in frame.columns  # resources left out


def test_best_per_group(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24: the best config of each group, from the previews (no result unpickled)."""
    for entry in cache.glob("*/*/result.pkl"):
        os.chmod(entry, 0)  # not needed: previews only
    best = exca_hydra.results(cache, best="result.loss", maximize=False)
    assert [(row["layers"], row["result.loss"]) for row in best] == [(4, 0.25)]
    worst = exca_hydra.results(cache, best="result.loss", by="lr", maximize=True)
    assert sorted((row["lr"], row["result.loss"]) for row in worst) == [(0.1, 1.0), (0.3, 0.5)]  # the failed row never wins
    assert main(["table", str(cache), "--best", "result.metrics.acc", "--max", "--by", "lr,name", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((row["lr"], row["name"]) for row in rows) == [(0.1, "base"), (0.3, "base")]  # "broken" has no result
    assert main(["table", str(cache), "--best", "result.loss"]) == 2
    assert "--max" in capsys.readouterr().err  # which way is better is never guessed
    assert main(["table", str(cache), "--best", "nope", "--min"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
