"""Issue 21, secrets: the batch pickle the launcher writes for its workers is readable by its owner
only, and uid.yaml's secret digest costs a slow derivation per guess (not an unsalted sha256)."""

from __future__ import annotations

import getpass
import hashlib
import stat
import time
import typing as tp
from pathlib import Path

import pydantic
import yaml

from exca_hydra import TaskInfra
from exca_hydra.cache import uid


class Secretive(pydantic.BaseModel):
    token: pydantic.SecretStr = pydantic.SecretStr("")
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> int:
        return len(self.token.get_secret_value())


def test_the_batch_pickle_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    task = Secretive(token="hunter2", infra={"folder": tmp_path, "cluster": "local"})
    assert task.run() == 7
    logs = task.infra.method_dir() / "logs" / getpass.getuser()
    batches = list(logs.glob("batch-*.pkl"))
    assert batches, list(logs.iterdir())
    for path in batches:
        assert b"hunter2" in path.read_bytes()  # the job needs it: the file must not be readable
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)


def test_the_secret_digest_is_slow_to_guess(tmp_path: Path) -> None:
    task = Secretive(token="hunter2", infra={"folder": tmp_path})
    assert task.run() == 7
    stored = yaml.safe_load((task.infra.uid_folder() / "uid.yaml").read_text())["token"]["!secret"]
    old = hashlib.sha256(b"exca-hydra secret str\0hunter2").hexdigest()
    assert stored != old  # the unsalted sha256 of before: a guess costs nanoseconds
    start = time.perf_counter()
    guess = uid._slow_hash.__wrapped__("str", b"hunter2")  # what a guess costs now
    assert time.perf_counter() - start > 0.01
    assert guess == stored
    # one uid in every cache: the same config in another cache folder gets the same uid
    other = Secretive(token="hunter2", infra={"folder": tmp_path / "other"})
    assert other.infra.uid() == task.infra.uid()


def test_the_names_the_readme_gives_exist() -> None:
    import importlib
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf8")
    names = set(re.findall(r"`(exca_hydra(?:\.\w+)+)`", readme))
    assert "exca_hydra.cache.uid.SECRET_KEY" in names
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj: tp.Any = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), name
                obj = getattr(obj, attr)
            break
        else:
            raise AssertionError(name)
