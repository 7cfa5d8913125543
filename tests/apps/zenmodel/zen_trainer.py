"""Models of the hydra-zen model app (issue 22): a pydantic model with its TaskInfra, in a module."""

import os

import pydantic

from exca_hydra import TaskInfra


class Trainer(pydantic.BaseModel):
    lr: float = 0.1
    epochs: int = 2
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> str:
        line = f"train lr={self.lr} epochs={self.epochs}"
        log = os.environ.get("EXCA_TEST_LOG")
        if log:
            with open(log, "a", encoding="utf8") as f:
                f.write(line + "\n")
        return line
