"""`def main(trainer: Trainer)` form: cached under <cache>/app.main,<version>/<uid>."""

import exca_hydra
from launcher_models import Trainer, work


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(trainer: Trainer) -> str:
    return work(trainer)


if __name__ == "__main__":
    main()
