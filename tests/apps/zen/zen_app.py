"""A hydra-zen app (zen(task).hydra_main): its config built from the task's signature."""

from hydra_zen import builds, store, zen

from zen_models import train

store(builds(train, populate_full_signature=True), name="config")

if __name__ == "__main__":
    store.add_to_hydra_store()
    zen(train).hydra_main(config_name="config", config_path=None, version_base="1.3")
