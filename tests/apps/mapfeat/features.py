"""Features shared by every training config of a sweep: a MapInfra method (tests/test_map_hydra.py)."""

from __future__ import annotations

import os
import time
import typing as tp

import numpy as np
import pydantic

from exca_hydra import MapInfra


class Features(pydantic.BaseModel):
    dim: int = 8
    infra: MapInfra = MapInfra()

    @infra.apply(item_uid=str)
    def features(self, items: tp.Iterable[int]) -> tp.Iterator[np.ndarray]:
        log = os.environ.get("EXCA_TEST_LOG")
        delay = float(os.environ.get("EXCA_TEST_SLEEP", "0"))
        for item in items:
            if delay:  # slow items: the jobs of a sweep overlap in time
                time.sleep(delay)
            if log:  # one line per computed item, appended (jobs run at once)
                with open(log, "a", encoding="utf8") as f:
                    f.write(f"{item}\n")
            yield np.full(self.dim, float(item))
