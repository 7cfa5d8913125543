"""python example_app/app.py -m model=conv,transformer [hydra/launcher=exca_slurm]"""

import sys
from pathlib import Path

import exca_hydra

# Run as a script after `pip install .` (which does not install example_app), the checkout is
# not on sys.path: put it there, so the models keep one module name (example_app.models) in
# the cache folders and in the pickles jobs load, whichever way the app was started.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from example_app.models import Trainer  # noqa: E402


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(trainer: Trainer) -> float:
    return trainer.run()


if __name__ == "__main__":
    main()
