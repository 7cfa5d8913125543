"""The YAML-free app's model with a conf/ directory that only overrides (issue 14): the primary
config changes defaults and picks the launcher, conf/model/cnn.yaml changes one value (no tag,
no repeated defaults), cnn_big.yaml extends cnn, small.yaml is a tag plus values."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "noyaml"))

import exca_hydra  # noqa: E402
from exp_models import Experiment  # noqa: E402


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(exp: Experiment) -> str:
    result = exp.train()
    print(f"overlay got: {result}")
    return result


if __name__ == "__main__":
    main()
