"""A task with a big result (``mb`` MB of bytes), to measure what the launcher holds: at exit, the
launching process writes its peak RSS (kB) to $EXCA_TEST_PEAK (forked jobs leave without it)."""

import atexit
import os
import resource

import pydantic

import exca_hydra
from exca_hydra import TaskInfra


class Big(pydantic.BaseModel):
    x: int = 0
    mb: int = 1
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def make(self) -> bytes:
        return bytes([self.x % 256]) * (self.mb << 20)


main = exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")(Big.make)


def _write_peak() -> None:
    with open(os.environ["EXCA_TEST_PEAK"], "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


if __name__ == "__main__":
    atexit.register(_write_peak)
    main()
