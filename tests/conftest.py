# ---- core-library tests (exca_hydra core): make tests/models.py importable everywhere ----
# Classes defined in tests/models.py are pickled by reference when a job runs in a separate
# process (cluster="local" goes through submitit), so the job must be able to import them:
# put the tests folder and the repository root on PYTHONPATH (inherited by subprocesses).
import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
_ROOT = str(Path(__file__).resolve().parent.parent)
for _path in (_ROOT, _TESTS):
    if _path not in sys.path:
        sys.path.insert(0, _path)
_parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in (_TESTS, _ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([_TESTS, _ROOT, *_parts])
# ---- end of core-library tests block ----
