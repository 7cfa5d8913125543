"""An app for adaptive sweepers (tests/test_adaptive.py): ``x`` must be >= 0, the search space
proposes negative values too.  Each computed job appends "x=<x>" to $EXCA_TEST_LOG."""

import os

import pydantic

import exca_hydra


class Cfg(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    x: float = pydantic.Field(0.5, ge=0)


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: Cfg) -> float:
    log = os.environ.get("EXCA_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf8") as f:
            f.write(f"x={cfg.x}\n")
    return (cfg.x - 0.3) ** 2


if __name__ == "__main__":
    main()
