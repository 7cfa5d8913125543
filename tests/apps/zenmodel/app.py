"""A hydra-zen app as Hydra users write them (issue 22): configs built from the model with
``builds``, the task wrapped with ``zen(task).hydra_main(...)``."""

from hydra_zen import builds, make_config, store, zen
from zen_trainer import Trainer

from exca_hydra import TaskInfra

TrainerConf = builds(Trainer, lr=0.1, epochs=2, infra=builds(TaskInfra, folder=None, populate_full_signature=False))
store(make_config(trainer=TrainerConf, seed=0), name="config")


def task(trainer: Trainer, seed: int) -> str:
    return trainer.train()


if __name__ == "__main__":
    store.add_to_hydra_store()
    zen(task).hydra_main(config_name="config", config_path=None, version_base="1.3")
