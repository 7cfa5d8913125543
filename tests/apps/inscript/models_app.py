"""The README's "Hydra: the app" pattern: the model is defined in the script itself (issue 22).
Its entries must be named after this script whichever launcher runs the job."""

import os
import typing as tp

import pydantic

import exca_hydra
from exca_hydra import TaskInfra


class Exp(pydantic.BaseModel):
    seed: int = 3
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def train(self) -> str:
        folder = self.infra.uid_folder()
        with open(os.environ["EXCA_TEST_LOG"], "a") as f:
            f.write(f"train seed={self.seed} folder={folder}\n")
        return f"seed={self.seed}"


@exca_hydra.main(version_base="1.3")
def main(exp: Exp) -> tp.Any:
    return exp.train()


if __name__ == "__main__":
    main()
