"""A task whose return value cannot be pickled (lr=0.7 returns a lambda), on the trainer app's
configs: the job must be reported failed, and no result may be cached for it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trainer"))

import exca_hydra  # noqa: E402
from launcher_models import Trainer, work  # noqa: E402


@exca_hydra.main(config_path="../trainer/conf", config_name="config", version_base="1.3")
def main(trainer: Trainer) -> object:
    line = work(trainer)
    if trainer.lr == 0.7:
        return lambda: line  # not picklable
    return line


if __name__ == "__main__":
    main()
