"""A model with a MapInfra sub-config, both defined in the script (found by the red team, F8):
the items' folder is named after this script whichever launcher runs the job."""

import os
import typing as tp

import pydantic

import exca_hydra
from exca_hydra import MapInfra, TaskInfra


class Features(pydantic.BaseModel):
    dim: int = 2
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def embed(self, items: tp.Iterable[str]) -> tp.Iterator[list[int]]:
        for item in items:
            with open(os.environ["EXCA_TEST_LOG"], "a") as f:
                f.write(f"item {item}\n")
            yield [len(item)] * self.dim


class Exp(pydantic.BaseModel):
    seed: int = 3
    feats: Features = Features()
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> int:
        return sum(v[0] for v in self.feats.embed(["a", "bb", "ccc"])) + self.seed


@exca_hydra.main(version_base="1.3")
def main(exp: Exp) -> tp.Any:
    return exp.train()


if __name__ == "__main__":
    main()
