"""python app.py -m model=a,b lr=0.001,0.01,0.1,0.5,1.0"""

import exca_hydra
from figures_models import Fit


@exca_hydra.main(version_base="1.3")
def main(fit: Fit) -> dict[str, float]:
    return fit.run()


if __name__ == "__main__":
    main()
