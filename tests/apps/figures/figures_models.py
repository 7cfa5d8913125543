"""The figures' app (issue 24): a score per model and lr; lr=0.5 diverges (a failure), and lr=1.0
waits for the file $EXCA_TEST_RELEASE (a job the test kills, so it has no outcome)."""

import math
import os
import time
import typing as tp

import pydantic

from exca_hydra import TaskInfra


class Fit(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    model: tp.Literal["a", "b"] = "a"
    lr: float = 0.1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def run(self) -> dict[str, float]:
        if self.lr == 0.5:
            raise ValueError("lr=0.5 diverges")
        if self.lr == 1.0:
            release = os.environ.get("EXCA_TEST_RELEASE", "")
            for _ in range(600):
                if release and os.path.exists(release):
                    break
                time.sleep(0.1)
        shift = 0.0 if self.model == "a" else 0.05
        return {"acc": round(0.9 - shift - 0.02 * math.log10(self.lr / 0.01) ** 2, 6), "loss": self.lr}
