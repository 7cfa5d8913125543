"""Models with a MapInfra method, importable by job processes (tests/test_map*.py)."""

from __future__ import annotations

import os
import typing as tp
from pathlib import Path

import numpy as np
import pydantic

from exca_hydra import MapInfra


def _log(folder: str | None, items: tp.Sequence[str]) -> None:
    """Record each computed item (one line per item, appended: processes share the file)."""
    if folder:
        with open(Path(folder) / "computed.log", "a") as f:
            f.write("".join(f"{item}\n" for item in items))


class Vectors(pydantic.BaseModel):
    """16-float vectors; ``fail_on``: an item that raises; ``log``: a folder recording computations."""

    scale: float = 1.0
    fail_on: str = ""
    log: str = ""
    sleep: float = 0.0
    kill_on: str = ""  # an item on which the process dies (SIGKILL), as in a crash
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str, exclude_from_cache_uid=("log", "sleep", "fail_on", "kill_on"))
    def vectors(self, items: tp.Iterable[str]) -> tp.Iterator[np.ndarray]:
        import time

        for item in items:
            if item == self.kill_on:
                os.kill(os.getpid(), 9)
            if item == self.fail_on:
                raise ValueError(f"cannot compute {item}")
            if self.sleep:
                time.sleep(self.sleep)
            _log(self.log, [item])
            yield np.arange(16, dtype=np.float32) * self.scale + len(item)


class Values(pydantic.BaseModel):
    """Python values of several kinds: JSON-able, pickled, arrays of two shapes."""

    infra: MapInfra = MapInfra(keep_in_ram=False)

    @infra.apply(item_uid=lambda x: f"k{x}")
    def values(self, items: tp.Iterable[int]) -> tp.Iterator[tp.Any]:
        for x in items:
            kind = x % 5
            if kind == 0:
                yield {"id": x, "name": f"item {x}", "tags": ["a", "b"], "score": x / 3}
            elif kind == 1:
                yield (x, {x}, b"bytes")
            elif kind == 2:
                yield np.full((2, 3), x, dtype=np.int64)
            elif kind == 3:
                yield np.arange(x % 7 + 1, dtype=np.float64)
            else:
                yield float("nan") if x % 10 == 4 else None


def pid() -> int:
    return os.getpid()
