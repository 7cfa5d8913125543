"""The YAML-free app's model (tests/apps/noyaml): nested discriminated unions, defaults of every
kind, descriptions, an infra.  ``Experiment.train`` appends a line to $EXCA_TEST_LOG."""

from __future__ import annotations

import os
import typing as tp

import pydantic

from exca_hydra import TaskInfra


class Adam(pydantic.BaseModel):
    name: tp.Literal["adam"] = "adam"
    lr: float = 1e-3


class SGD(pydantic.BaseModel):
    name: tp.Literal["sgd"] = "sgd"
    lr: float = 0.01
    momentum: float = pydantic.Field(0.0, description="Heavy-ball momentum.")


class CNN(pydantic.BaseModel):
    name: tp.Literal["cnn"] = "cnn"
    channels: int = 8
    opt: Adam | SGD = pydantic.Field(default_factory=Adam, discriminator="name")


class MLP(pydantic.BaseModel):
    name: tp.Literal["mlp"] = "mlp"
    hidden: list[int] = [64, 64]
    opt: Adam | SGD = pydantic.Field(default_factory=SGD, discriminator="name")


class Mnist(pydantic.BaseModel):
    name: tp.Literal["mnist"] = "mnist"
    batch_size: int = 16


class Cifar(pydantic.BaseModel):
    name: tp.Literal["cifar"] = "cifar"
    batch_size: int = 32
    augment: bool = True


class Experiment(pydantic.BaseModel):
    seed: int = pydantic.Field(3, description="Random seed of the run.")
    model: CNN | MLP = pydantic.Field(default_factory=MLP, discriminator="name", description="The network.")
    data: Mnist | Cifar = pydantic.Field(Mnist(), discriminator="name")
    scale: float = 1  # an int default of a float field: left to pydantic (uid unchanged)
    tags: dict[str, str] = {}
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> str:
        line = f"train seed={self.seed} model={self.model.name} opt={self.model.opt.name} data={self.data.name}"
        log = os.environ.get("EXCA_TEST_LOG")
        if log:
            with open(log, "a", encoding="utf8") as f:
                f.write(line + "\n")
        return line
