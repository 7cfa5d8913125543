"""The peers' trivial app (as in the notes): a plain @hydra.main task returning cfg.x * 2."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    return int(cfg.x) * 2


if __name__ == "__main__":
    main()
