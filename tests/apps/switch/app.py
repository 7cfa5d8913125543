"""conf/model/cnn.yaml selects SGD for CNN's optimizer (Adam by default): model=cnn composes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exca_hydra  # noqa: E402
from switch_models import Exp  # noqa: E402


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(exp: Exp) -> str:
    return exp.train()


if __name__ == "__main__":
    main()
