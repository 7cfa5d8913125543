"""Pydantic models shared by the core tests (importable by submitit job processes).

Calls are counted through a side-effect file: every decorated method appends one line to
``$EXCA_TEST_DIR/calls`` (the tests point EXCA_TEST_DIR at their tmp_path; job processes
inherit the environment).  A method fails while ``$EXCA_TEST_DIR/fail`` exists.
"""

from __future__ import annotations

import importlib
import os
import time
import typing as tp
from pathlib import Path

import pydantic

from exca_hydra import TaskInfra


def record(tag: str) -> None:
    folder = os.environ.get("EXCA_TEST_DIR")
    if folder:
        with open(Path(folder) / "calls", "a", encoding="utf8") as f:
            f.write(tag + "\n")


def calls(folder: Path) -> list[str]:
    path = Path(folder) / "calls"
    return path.read_text("utf8").splitlines() if path.exists() else []


def _should_fail() -> bool:
    folder = os.environ.get("EXCA_TEST_DIR")
    return bool(folder) and (Path(folder) / "fail").exists()


# ----- the seed's snippets -----
class MyTask(pydantic.BaseModel):
    x: int
    y: str = "blublu"
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        record(f"MyTask:{self.x}")
        if _should_fail():
            raise ValueError(f"failing on purpose for x={self.x}")
        return 2 * self.x


class ConvCfg(pydantic.BaseModel):
    name: tp.Literal["conv"] = "conv"
    layers: int = 12
    kernel: int = 5
    channels: int = 128

    def build(self) -> dict[str, tp.Any]:
        return {"kind": "conv", "layers": self.layers, "kernel": self.kernel}


class TransformerCfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["transformer"] = "transformer"
    layers: int = 12
    embeddings: int = 128

    def build(self) -> dict[str, tp.Any]:
        return {"kind": "transformer", "layers": self.layers, "embeddings": self.embeddings}


class Trainer(pydantic.BaseModel):
    model: ConvCfg | TransformerCfg = pydantic.Field(..., discriminator="name")
    optimizer: str = "Adam"
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> dict[str, tp.Any]:
        record(f"Trainer:{self.model.name}:{self.model.layers}")
        model = self.model.build()
        folder = self.infra.uid_folder()
        resumed = False
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            ckpt = folder / "checkpoint.txt"
            resumed = ckpt.exists()
            ckpt.write_text(str(model["layers"]))
        return {**model, "optimizer": self.optimizer, "resumed": resumed, "pid": os.getpid()}


# ----- helpers for caching/status tests -----
class Gated(pydantic.BaseModel):
    """Runs until ``$EXCA_TEST_DIR/release`` exists (at most 30 s): a job observably running."""

    x: int
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> int:
        record(f"Gated:{self.x}")
        release = Path(os.environ["EXCA_TEST_DIR"]) / "release"
        end = time.time() + 30
        while not release.exists() and time.time() < end:
            time.sleep(0.05)
        return self.x


class Unpicklable(pydantic.BaseModel):
    x: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> tp.Any:
        record("Unpicklable")
        return lambda: self.x  # cannot be pickled


class Snapshot(pydantic.BaseModel):
    """Returns a value from a module of the working directory (see the workdir test)."""

    module: str = "snapcode.mod"
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def compute(self) -> tp.Any:
        mod = importlib.import_module(self.module)
        return mod.VALUE, str(Path(mod.__file__).resolve())


class Opt(pydantic.BaseModel):
    lr: float = 0.1
    seed: int = 0


class WithExclude(pydantic.BaseModel):
    opt: Opt = Opt()
    debug: bool = False
    infra: TaskInfra = TaskInfra()

    @infra.apply(exclude_from_cache_uid=("opt.seed", "debug"))
    def compute(self) -> float:
        record("WithExclude")
        return self.opt.lr
