"""Method form: the task IS Trainer.run, cached where Trainer(...).run() caches from Python."""

import exca_hydra
from launcher_models import Trainer

main = exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")(Trainer.run)

if __name__ == "__main__":
    main()
