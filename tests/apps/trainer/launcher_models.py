"""The launcher tests' pydantic app: a model union picked by the `model` config group.

``work`` is the task: it appends one line to the file named by $EXCA_TEST_LOG (the side effect
the tests count), raises for lr=0.5 and kills its own process for lr=0.25.
"""

import os
import typing as tp

import pydantic

from exca_hydra import TaskInfra


class ConvCfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["conv"] = "conv"
    layers: int = 2
    kernel: int = 3


class TransformerCfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["transformer"] = "transformer"
    layers: int = 2
    embeddings: int = 16


class Trainer(pydantic.BaseModel):
    model: ConvCfg | TransformerCfg = pydantic.Field(..., discriminator="name")
    lr: float = 0.1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> str:
        return work(self)


def _job_num() -> int:
    from hydra.core.hydra_config import HydraConfig

    try:
        return int(HydraConfig.get().job.num)
    except Exception:  # not in a Hydra multirun job (Python API, single run)
        return -1


def work(trainer: Trainer) -> str:
    if trainer.lr == 0.25:
        os._exit(3)  # the job's process dies without a Python error
    if trainer.lr == 0.5:
        raise ValueError("lr=0.5 diverges")
    if str(trainer.lr) in os.environ.get("EXCA_TEST_FAIL", "").split(","):  # failures that a retry fixes
        raise ValueError(f"lr={trainer.lr} failed (EXCA_TEST_FAIL)")
    release = os.environ.get("EXCA_TEST_RELEASE")  # wait for this file: a job observably running
    if release:
        release = release.replace("{lr}", str(trainer.lr))  # one file per job, if asked
        import time

        for _ in range(600):
            if os.path.exists(release):
                break
            time.sleep(0.1)
    line = f"{_job_num()} {type(trainer.model).__name__} lr={trainer.lr}"
    log = os.environ.get("EXCA_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf8") as f:
            f.write(line + "\n")
    return line
