"""A plain @hydra.main app (DictConfig task, no pydantic), appending to $EXCA_TEST_LOG per run."""

import os

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    log = os.environ.get("EXCA_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf8") as f:
            f.write(f"plain x={cfg.x}\n")
    return int(cfg.x) * 10


if __name__ == "__main__":
    main()
