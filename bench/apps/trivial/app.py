"""The peers' trivial app (as in the notes): a plain @hydra.main task returning cfg.x * 2."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    short, long = cfg.get("short", 0), cfg.get("long", 0)  # the pull rows' durations (job 0 is the long one)
    if short or long:
        import time

        time.sleep(long if int(cfg.x) == 0 else short)
    return int(cfg.x) * 2


if __name__ == "__main__":
    main()
