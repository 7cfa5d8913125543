"""YAML that switches a union member (issue 22): conf/model/cnn.yaml picks SGD for CNN's optimizer
(whose generated default is Adam), conf/config.yaml picks Cifar for data (default Mnist) by its tag."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "noyaml"))

import exca_hydra  # noqa: E402
from exp_models import Experiment  # noqa: E402


@exca_hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(exp: Experiment) -> str:
    print(f"switch got: model={exp.model.name} opt={exp.model.opt!r} data={exp.data!r}")
    return exp.model.opt.name


if __name__ == "__main__":
    main()
