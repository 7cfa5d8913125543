"""The YAML-free app: no config_path, no config_name; the config is the model's (issue 14).

`return exp.train()` makes the app that cached method: one cache entry per config, the method's."""

import exca_hydra
from exp_models import Experiment


@exca_hydra.main(version_base="1.3")
def main(exp: Experiment) -> str:
    return exp.train()


if __name__ == "__main__":
    main()
