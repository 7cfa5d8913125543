"""A submitit job's entry point: ``python -u -c "...main(sys.argv[1:])" -u -m
submitit.core._submit FOLDER`` (the executors' ``python`` command; ``-c`` with the job's folder
taken off ``sys.path``, so that nothing in a code snapshot is imported before the check). It runs submitit's job after
checking that the submission pickle is in the jobs' private folder (execution/private.py):
submitit itself loads whatever file is at that path."""

from __future__ import annotations

import os
import sys
import typing as tp
from pathlib import Path


def main(argv: list[str]) -> None:
    folder = argv[-1]
    from submitit.core import submission, utils

    from .private import check_private, jobs_root

    load = utils.DelayedSubmission.load.__func__  # type: ignore[attr-defined]

    def checked_load(cls: type, filepath: str | Path) -> tp.Any:
        check_private(Path(filepath), jobs_root(Path(folder)))
        if os.getcwd() not in sys.path:  # as `python -m` would have it: the submission's folder first
            sys.path.insert(0, os.getcwd())
        return load(cls, filepath)

    utils.DelayedSubmission.load = classmethod(checked_load)  # type: ignore[assignment]
    submission.process_job(folder)


if __name__ == "__main__":
    main(sys.argv[1:])
