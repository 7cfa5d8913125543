"""Models for the fault tests: each computation appends its x to $EXCA_TEST_DIR/calls-<x>."""

import os
import time
from pathlib import Path

import pydantic

from exca_hydra import TaskInfra


class Slow(pydantic.BaseModel):
    x: int
    sleep_s: float = 0.2
    size: int = 0  # bytes of the result (a large result makes its write take a while)
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> bytes:
        with open(Path(os.environ["EXCA_TEST_DIR"]) / f"calls-{self.x}", "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(self.sleep_s)
        return bytes([self.x % 256]) * self.size


def sweep(folder: str, xs: list[int], cluster: str | None = None) -> None:
    """One process's job array over xs, then read every result."""
    base = Slow(x=xs[0], infra={"folder": folder, "cluster": cluster})
    with base.infra.job_array() as array:
        array.extend(base.infra.clone_obj(x=x) for x in xs)
    for task in array:
        task.compute()
