"""A typed app: pydantic model with a discriminated union chosen by the `model` config group,
cached by uid under $EXCA_BENCH_CACHE (rows 4, 5 and the memory row)."""

import typing as tp

import pydantic

import exca_hydra


class Conv(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["conv"] = "conv"
    layers: int = 12
    kernel: int = 5


class Transformer(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: tp.Literal["transformer"] = "transformer"
    layers: int = 12
    embeddings: int = 128


class Trainer(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    model: Conv | Transformer = pydantic.Field(..., discriminator="name")
    lr: float = 1e-3
    seed: int = 0
    infra: exca_hydra.TaskInfra = exca_hydra.TaskInfra()

    @infra.apply
    def run(self) -> float:
        return self.lr * self.model.layers + self.seed


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(trainer: Trainer) -> float:
    return trainer.run()


if __name__ == "__main__":
    main()
