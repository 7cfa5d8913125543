"""Issue 21, the cache's edges: a result.pkl that does not load (garbage, raising) is set aside
like a truncated one; results are written owner-only-writable and a file others could have
rewritten is not trusted; cache files are read within bounds."""

from __future__ import annotations

import pickle
import typing as tp
from pathlib import Path

import pydantic
import pytest

from exca_hydra import TaskInfra
from exca_hydra.cache.store import CacheError, Entry
from exca_hydra.cli import main as cli

RUNS: list[int] = []


class Task(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> int:
        RUNS.append(self.x)
        return 2 * self.x


BAD_RESULTS = {
    "raising": b"cbuiltins\nint\n(S'not a number'\ntR.",  # ValueError while rebuilt
    "garbage": b"K\x01)R.",  # TypeError
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_a_result_that_does_not_load_is_set_aside(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    RUNS.clear()
    task = Task(x=3, infra={"folder": tmp_path})
    assert task.run() == 6
    folder = task.infra.uid_folder()
    (folder / "result.pkl").write_bytes(BAD_RESULTS[kind])
    with pytest.raises(CacheError, match="unreadable"):
        Task(x=3, infra={"folder": tmp_path}).run()
    assert (folder / "result.pkl.corrupt").read_bytes() == BAD_RESULTS[kind]
    assert not (folder / "result.pkl").exists()
    assert Task(x=3, infra={"folder": tmp_path}).infra.status() == "failed"
    capsys.readouterr()
    cli(["list", str(tmp_path)])
    out = capsys.readouterr().out
    assert "failed" in out.lower() and "completed" not in out.lower(), out
    assert Task(x=3, infra={"folder": tmp_path, "mode": "retry"}).run() == 6
    assert RUNS == [3, 3]
