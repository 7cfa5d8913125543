"""A YAML-free app with a required group (`data`, a union without default) and a required value."""

import typing as tp

import pydantic

import exca_hydra
from exp_models import CNN, MLP, Cifar, Mnist


class Required(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    data: Mnist | Cifar = pydantic.Field(discriminator="name", description="The data set: choose one.")
    model: CNN | MLP | None = pydantic.Field(None, discriminator="name")
    steps: int = pydantic.Field(description="Number of steps (required).")
    note: tp.Optional[str] = None


@exca_hydra.main(version_base="1.3")
def main(cfg: Required) -> str:
    line = f"required data={cfg.data.name} steps={cfg.steps} model={cfg.model and cfg.model.name}"
    print(line)
    return line


if __name__ == "__main__":
    main()
