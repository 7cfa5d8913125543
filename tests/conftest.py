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


# ---- Slurm tests (issue 5): the `slurm_cluster` fixture ----
# Tests marked @pytest.mark.slurm submit real jobs (scripts/slurm-up starts a one-node cluster).
# Unreachable cluster: a failure when $CI or $EXCA_REQUIRE_SLURM is set, a skip otherwise.
import re as _re
import shutil as _shutil
import subprocess as _subprocess

import pytest


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def slurm_unreachable_reason() -> str | None:
    """None when a Slurm node answers and accepts jobs, else why not."""
    missing = [tool for tool in ("sinfo", "sbatch", "srun", "sacct", "scancel") if _shutil.which(tool) is None]
    if missing:
        return f"Slurm client tools not on PATH: {', '.join(missing)}"
    try:
        proc = _subprocess.run(["sinfo", "-h", "-o", "%n %t"], capture_output=True, text=True, timeout=20)
    except (OSError, _subprocess.TimeoutExpired) as e:
        return f"sinfo did not answer ({e})"
    if proc.returncode != 0:
        return f"sinfo failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}"
    nodes = [line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2]
    bad = _re.compile(r"down|drain|drng|fail|maint|unk|boot|\*")  # '*': node not responding
    if not any(not bad.search(state) for _, state in nodes):
        return f"no usable Slurm node (sinfo: {proc.stdout.strip() or 'no node'!r})"
    try:  # submitit reads job states only through sacct: accounting must work
        acct = _subprocess.run(["sacct", "-n", "-X", "-S", "now-1minutes"], capture_output=True, text=True, timeout=20)
    except (OSError, _subprocess.TimeoutExpired) as e:
        return f"sacct did not answer ({e})"
    if acct.returncode != 0:
        return f"sacct failed (is slurmdbd accounting up?): {acct.stderr.strip()[:300]}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    reason = slurm_unreachable_reason()
    if reason is None:
        return
    message = f"Slurm cluster not reachable: {reason}. Start one as root with scripts/slurm-up."
    if _env_flag("CI") or _env_flag("EXCA_REQUIRE_SLURM"):
        pytest.fail(message + " (CI or EXCA_REQUIRE_SLURM is set: Slurm tests must run)", pytrace=False)
    pytest.skip(message)
# ---- end of Slurm tests block ----
