"""The experiment's config: pydantic models, the model part swappable by the `model` config group."""

import math
import time
import typing as tp

import pydantic

from exca_hydra import TaskInfra


class ConvCfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["conv"] = "conv"
    layers: int = 12
    kernel: int = 5
    channels: int = 128


class TransformerCfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["transformer"] = "transformer"
    layers: int = 12
    embeddings: int = 128


class Trainer(pydantic.BaseModel):
    model: ConvCfg | TransformerCfg = pydantic.Field(..., discriminator="name")
    optimizer: tp.Literal["Adam", "SGD"] = "Adam"
    lr: float = 1e-3
    seconds_per_layer: float = 0.0  # a stand-in for training time (0: instant), to watch a sweep run
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> float:
        """A stand-in for training: a deterministic 'accuracy' computed from the config."""
        ckpt = self.infra.uid_folder(create=True)
        time.sleep(self.seconds_per_layer * self.model.layers)
        best_lr = 1e-3 if self.model.name == "conv" else 3e-4  # each model has its learning rate
        score = 1.0 - 1.0 / (self.model.layers + 1) - (0.01 if self.optimizer == "SGD" else 0.0)
        score -= 0.02 * math.log10(self.lr / best_lr) ** 2
        if ckpt is not None:
            (ckpt / "checkpoint.txt").write_text(f"{score}\n")
        return round(score, 6)
