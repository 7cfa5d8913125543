"""A model whose option YAML switches a nested union member (issue 22): CNN's optimizer is Adam
by default, conf/model/cnn.yaml makes it SGD.  ``Exp.train`` appends its config to $EXCA_TEST_LOG."""

from __future__ import annotations

import json
import os
import typing as tp

import pydantic

from exca_hydra import TaskInfra


class Adam(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    type: tp.Literal["adam"] = "adam"
    lr: float = 1e-3
    beta: float = 0.9


class SGD(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    type: tp.Literal["sgd"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.0


class CNN(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    type: tp.Literal["cnn"] = "cnn"
    channels: int = 8
    opt: Adam | SGD = pydantic.Field(default_factory=Adam, discriminator="type")


class MLP(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    type: tp.Literal["mlp"] = "mlp"
    hidden: int = 32


class Exp(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    model: CNN | MLP = pydantic.Field(default_factory=MLP, discriminator="type")
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> str:
        line = json.dumps(self.model.model_dump(), sort_keys=True)
        log = os.environ.get("EXCA_TEST_LOG")
        if log:
            with open(log, "a", encoding="utf8") as f:
                f.write(line + "\n")
        return line
