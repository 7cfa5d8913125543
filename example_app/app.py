"""python example_app/app.py -m model=conv,transformer [hydra/launcher=exca_slurm]"""

import exca_hydra
from example_app.models import Trainer


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(trainer: Trainer) -> float:
    return trainer.run()


if __name__ == "__main__":
    main()
