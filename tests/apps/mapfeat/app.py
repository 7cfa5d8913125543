"""A sweep whose jobs call a MapInfra method: every job shares one item cache ($EXCA_MAP_CACHE)."""

import os

import hydra
from features import Features
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    features = Features(infra={"folder": os.environ["EXCA_MAP_CACHE"]})
    items = range(cfg.start, cfg.start + cfg.n)
    return float(sum(vector.sum() for vector in features.features(items)) * cfg.lr)


if __name__ == "__main__":
    main()
