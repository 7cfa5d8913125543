# The logic lives in exca_hydra.bridge: Hydra only accepts plugin classes defined in a module
# under hydra_plugins, hence these subclasses.
from exca_hydra.bridge.plugin import ExcaLauncher


class ExcaLocalLauncher(ExcaLauncher):
    cluster = "local"


class ExcaSlurmLauncher(ExcaLauncher):
    cluster = "slurm"
