"""What a forked local job is to itself and to its launcher (``ForkBackend``): its id, its log
files (named as submitit names them, so ``submitit.JobEnvironment()`` works in the task), its
working directory; and, on the launcher's side, the job's output read back from its log files
and a wait for the first of several child processes to end, with a timeout. ``fork_child`` and
``redirect`` are the one way a job's process is forked (local jobs, pull workers' jobs)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import sys
import threading
import time
import traceback
import typing as tp
import warnings
from pathlib import Path


@dataclasses.dataclass
class JobSetup:
    """How the forked jobs start. ``ids``: each job's id, by batch index (default: the process
    id); ``logs``: the log folder, a submitit template (``%j``: the job id), None to keep the
    launcher's output; ``workdir``: a code snapshot the job starts in, ``import_path`` its copy of
    the launching script's folder."""

    ids: tp.Sequence[str] = ()
    logs: str | None = None
    stderr_to_stdout: bool = False
    workdir: Path | None = None
    import_path: str | None = None

    def job_id(self, index: int) -> str:
        return self.ids[index] if index < len(self.ids) else str(os.getpid())

    def log_paths(self, job_id: str) -> tuple[Path, Path] | None:
        """(stdout, stderr) of a job, as submitit's ``JobPaths`` names them (task 0)."""
        if self.logs is None:
            return None
        array, _, index = job_id.partition("_")
        folder = Path(self.logs.replace("%j", job_id).replace("%A", array).replace("%a", index)).absolute()
        out = folder / f"{job_id}_0_log.out"
        return out, out if self.stderr_to_stdout else folder / f"{job_id}_0_log.err"

    def enter(self, index: int) -> str:
        """In the child, before the job runs: its folder, its logs, its environment; its id."""
        job_id = self.job_id(index)
        if self.workdir is not None:
            os.chdir(self.workdir)
            for folder in (str(self.workdir), self.import_path):
                if folder:
                    sys.path.insert(0, folder)
        paths = self.log_paths(job_id)
        if paths is not None:
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            redirect(*paths, append=True)
            for stream in (sys.stdout, sys.stderr):
                if hasattr(stream, "reconfigure"):
                    stream.reconfigure(line_buffering=True)  # the launcher shows it as it comes
        # what submitit's LocalJobEnvironment reads: submitit.JobEnvironment() works in the task
        os.environ.update(
            SUBMITIT_EXECUTOR="local",
            SUBMITIT_LOCAL_JOB_ID=job_id,
            SUBMITIT_LOCAL_NTASKS="1",
            SUBMITIT_LOCAL_JOB_NUM_NODES="1",
            SUBMITIT_LOCAL_NODEID="0",
            SUBMITIT_LOCAL_GLOBALID="0",
            SUBMITIT_LOCAL_LOCALID="0",
            SUBMITIT_FOLDER=self.logs or os.getcwd(),
        )
        return job_id


class Tail:
    """New complete lines of a log file, read where the last call stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def read(self, final: bool = False) -> str:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            data = b""
        self.offset += len(data)
        data = self.rest + data
        if final:
            self.rest = b""
        else:
            data, self.rest = data[: data.rfind(b"\n") + 1], data[data.rfind(b"\n") + 1 :]
        return data.decode("utf8", errors="replace")


def wait_any(pids: tp.Sequence[int], timeout: float) -> None:
    """Return as soon as one of these child processes has ended (without reaping it), or after
    ``timeout`` seconds."""
    fds: list[int] = []
    try:
        for pid in pids:
            fds.append(os.pidfd_open(pid))
        if fds:
            select.select(fds, [], [], max(0.0, timeout))
        return
    except (OSError, AttributeError):  # no pidfd (old kernel, not Linux): ask every 20 ms
        pass
    finally:
        for fd in fds:
            os.close(fd)
    pids = list(pids)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None for pid in pids):
            return
        time.sleep(min(0.02, max(0.0, end - time.monotonic())))


def stop_late(running: tp.Mapping[int, tp.Any], timeout_min: float | None, grace_s: float) -> float | None:
    """SIGTERM each job (pid -> handle) past its time, SIGKILL it ``grace_s`` later; when this
    must be looked at again (None: never). A handle's ``stopped`` lists when each was sent."""
    if timeout_min is None:
        return None
    now, moments = time.time(), []
    for pid, handle in running.items():
        due = handle.started + timeout_min * 60 if not handle.stopped else handle.stopped[0] + grace_s
        if len(handle.stopped) < 2 and now >= due:
            handle.stopped.append(now)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if len(handle.stopped) == 1 else signal.SIGKILL)
            due = now + grace_s
        if len(handle.stopped) < 2:
            moments.append(due)
    return min(moments, default=None)


def relay(handles: tp.Sequence[tuple[tp.Any, bool]], echo: tp.Callable[[str, bool], None]) -> None:
    """Show each job's new output: (handle, ended) pairs; the lines of ended jobs, all of them."""
    for handle, final in handles:
        for tail in handle.tails:
            text = tail.read(final)
            if text:
                echo(text, tail.path.suffix == ".err")


def fork_child(run: tp.Callable[[], None], interrupted_exit: int | None = None) -> int:
    """Fork a process that runs ``run`` and leaves by ``os._exit`` (never back into the parent's
    code, nor its cleanup handlers): 0 when ``run`` returned, ``interrupted_exit`` on
    KeyboardInterrupt if given, else 1 with the traceback on stderr. Returns the child's pid."""
    flush_std()  # else the child writes the parent's buffered output again
    with warnings.catch_warnings():
        if all(t.name == "exca-claims" for t in threading.enumerate() if t is not threading.main_thread()):
            # Python >= 3.12 warns of fork() in a threaded process: ours is only the claims'
            # heartbeat, whose lock the child replaces (lease._after_fork); others' threads still warn
            warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        run()
        code = 0
    except KeyboardInterrupt:
        if interrupted_exit is None:
            traceback.print_exc()
        else:
            code = interrupted_exit
    except BaseException:
        traceback.print_exc()
    finally:
        flush_std()
        os._exit(code)


def redirect(stdout: Path, stderr: Path, append: bool) -> None:
    """This process's stdout and stderr (file descriptors 1 and 2) into log files."""
    flush_std()
    mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    targets = {path: os.open(path, mode, 0o666) for path in dict.fromkeys((stdout, stderr))}
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(targets[path], fd)
    for target in targets.values():
        os.close(target)


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
