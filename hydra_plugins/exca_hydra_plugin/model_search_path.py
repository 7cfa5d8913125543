"""The app's generated config (exca_hydra/bridge/start/generate.py) in Hydra's search path.

Hydra discovers this plugin on every app start: it imports only Hydra, and acts only when an
``exca_hydra.main`` app is running in this process (``exca_hydra.bridge.start.model_source`` then is
imported).
"""

import sys
from typing import Any

from hydra.plugins.search_path_plugin import SearchPathPlugin


class ExcaModelSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: Any) -> None:
        source = sys.modules.get("exca_hydra.bridge.start.model_source")
        if source is not None:
            source.search_path(search_path)
