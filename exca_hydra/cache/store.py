"""The cache store: one folder per uid, holding the configs, the result or the error, the job.

Layout: ``<folder>/<module.Class.method>,<version>/<uid>/`` with
``config.yaml`` (full config), ``uid.yaml`` (what the uid was computed from), ``result.pkl``
(written to a temporary name then renamed, so its presence means "completed"), ``error.pkl`` and
``error.txt`` for a failure, ``outcome.json`` (status, duration and a preview of the result, to
look at without unpickling) and ``job.json`` (the reference of the job computing it).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import time
import typing as tp
import uuid
from pathlib import Path

import yaml

from .errors import CacheError, CacheNotWritable, CorruptResult, JobFailure, OtherProgram
from .host import hostname, slurm_job_id
from . import lease
from .preview import preview, short
from .digest import changed_fields, stored_digests, with_digests
from .records import MAX_FILE_BYTES, changed_values, open_file, cut, dump_yaml, load_yaml, normalized, read_json, read_text, read_yaml
from .records import same_stored, without_secrets
from .trust import ENV as TRUST_ENV
from .trust import check_folder_trusted, check_trusted, trusted_owner, user_name

Status = tp.Literal["not submitted", "running", "completed", "failed"]

logger = logging.getLogger(__name__)
_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED and len(_WARNED) < 1000:
        _WARNED.add(message)
        logger.warning(message)

RESULT = "result.pkl"
ERROR = "error.pkl"
ERROR_TEXT = "error.txt"
JOB = "job.json"
CLAIM = "claim.json"
CONFIG = "config.yaml"
UID_CONFIG = "uid.yaml"
PREVIOUS = "result.pkl.previous"  # a result set aside while mode=force recomputes it
OUTCOME = "outcome.json"
PROGRAM = "program.txt"


class JobInterrupted(JobFailure):
    """A job stopped by the user (Ctrl-C, SIGTERM): not an outcome, so nothing is recorded and
    the job runs again next time."""


def is_interrupt(error: BaseException) -> bool:
    return isinstance(error, (KeyboardInterrupt, JobInterrupted))


FILE_MODE = 0o644  # and the umask: never writable by the group or others, whatever the umask


def _create(path: Path) -> tp.BinaryIO:
    """A new file that only its owner can write: in a group cache (umask 002), a member who could
    rewrite a result in place would keep its owner, and the trust check with it."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary sibling then rename: readers see the old file or the whole new one."""
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        with _create(tmp) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Entry:
    """The cache folder of one uid."""

    __slots__ = ("folder",)

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Entry({str(self.folder)!r})"

    @property
    def uid(self) -> str:
        return self.folder.name

    def path(self, name: str) -> Path:
        return self.folder / name

    # status by file presence only: no unpickling, no Slurm query
    def has_result(self) -> bool:
        return (self.folder / RESULT).exists()

    def has_error(self) -> bool:
        return (self.folder / ERROR).exists()

    def file_status(self) -> Status | None:
        """completed/failed from files alone, None when the job must be asked."""
        if self.has_result():
            return "completed"
        if self.has_error():
            return "failed"
        return None

    def write_configs(self, full: dict[str, tp.Any], uid_cfg: dict[str, tp.Any], program: str | None = None,
                      digests: dict[str, str] | None = None) -> None:
        """Record the configs (and the program computing them; ``digests``: each field's value
        with its kind, see cache.digest); an existing uid.yaml that disagrees means a uid collision."""
        config_text = with_digests(dump_yaml(without_secrets(full, uid_cfg)), digests).encode("utf8")
        uid_text = dump_yaml(uid_cfg).encode("utf8")
        for name, text in ((CONFIG, config_text), (UID_CONFIG, uid_text)):
            if len(text) > MAX_FILE_BYTES:  # never write a file this library then refuses to read
                raise CacheError(
                    f"The config is too large to cache: its {name} would be {len(text) / 2**20:.1f} MiB (at most "
                    f"{MAX_FILE_BYTES >> 20} MiB are read back). Keep large data out of the config (give a "
                    "path to a file instead of a long list, for example)."
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.check_program(program)
        if program is not None and not (self.folder / PROGRAM).exists():
            atomic_write(self.folder / PROGRAM, program.encode("utf8"))
        uid_path = self.folder / UID_CONFIG
        previous = None
        if uid_path.exists():
            try:
                previous = read_yaml(uid_path)
            except (ValueError, yaml.YAMLError):
                previous = None  # unreadable: rewritten below
            if previous is not None and not same_stored(previous, normalized(uid_cfg)):
                raise CacheError(
                    f"Inconsistent uid config in {uid_path}:\nstored: {cut(previous)}\ncurrent: {uid_cfg}\n"
                    "Two configs share one uid folder; remove that folder if it is stale."
                )
        # config.yaml records what the next result is computed with: always rewritten
        atomic_write(self.folder / CONFIG, config_text)
        if previous is None:
            atomic_write(uid_path, uid_text)

    def read_config(self) -> dict[str, tp.Any]:
        return self._read_yaml(CONFIG)  # type: ignore[no-any-return]

    def _read_yaml(self, name: str) -> tp.Any:
        return self._load_yaml(name, self._read_text(name))

    def _read_text(self, name: str) -> str:
        try:
            return read_text(self.folder / name)
        except (OSError, ValueError) as e:
            raise self._unreadable(name, e) from e

    def _load_yaml(self, name: str, text: str) -> tp.Any:
        try:
            return load_yaml(text)
        except yaml.YAMLError as e:
            raise self._unreadable(name, e) from e

    def _unreadable(self, name: str, error: BaseException) -> CacheError:
        return CacheError(f"Cache file {self.folder / name} is missing or unreadable ({error}); remove {self.folder} to recompute")

    def check_trust(self) -> None:
        """Raise Untrusted unless this entry's outcome could be loaded (its result or error file,
        opened, not unpickled), or a result computed here could: someone else's entry is neither
        reused nor reported as ours."""
        for name in (RESULT, ERROR):
            try:
                f = open_file(self.folder / name)
            except OSError:
                continue
            with f:
                check_trusted(f, self.folder / name)
            return
        check_folder_trusted(self.folder)

    def check_program(self, program: str | None) -> None:
        """Two programs whose tasks have the same name (``train.py:main`` of two projects) share
        a folder name: an entry computed by another program is never theirs."""
        if program is None:  # a model's task: named by its class, nothing to read
            return
        try:
            stored = read_text(self.folder / PROGRAM)
        except OSError:
            return
        except ValueError:  # too big or not UTF-8: not a record of this library
            stored = f"(an unreadable {PROGRAM})"
        if stored != program:
            raise OtherProgram(
                f"Cache entry {self.folder} was computed by {stored}, not by {program}: two programs "
                "with the same script and function name share this cache folder. Give one of them "
                "its own cache folder (hydra.launcher.folder or hydra.sweeper.folder)."
            )

    def verify(self, uid_cfg: dict[str, tp.Any], identity: dict[str, tp.Any], program: str | None = None,
               digests: dict[str, str] | None = None) -> None:
        """Before a cached outcome is used: the folder must hold this config's uid config, and the
        stored config must agree with this one on every field, defaults included and of the same
        kinds (a class default that changed would otherwise serve a stale result); for a plain
        task, the same program."""
        self.check_program(program)
        self.check_trust()
        stored_uid = self._read_yaml(UID_CONFIG)
        if not same_stored(stored_uid, normalized(uid_cfg)):
            raise CacheError(
                f"Cache entry {self.folder} belongs to another config:\nstored uid config: {cut(stored_uid)}\n"
                f"this config: {uid_cfg}\nRemove that folder (it was edited, or two configs share a uid)."
            )
        text = self._read_text(CONFIG)
        stored = self._load_yaml(CONFIG, text)
        changed = changed_values(stored, identity)  # identity: sets unordered
        details = [f"{k} (cached with {cut(repr(old), 200)}, now {cut(repr(new), 200)})" for k, old, new in changed[:5]]
        if not details:
            kinds = changed_fields(stored_digests(text), digests)
            details = [f"{k} (cached with {cut(repr(stored.get(k) if isinstance(stored, dict) else None), 200)}, now "
                       "a value of another kind or class, or with another default inside)" for k in kinds[:5]]  # fmt: skip
        if details:
            raise CacheError(
                f"Cache entry {self.folder} was computed with other values for {', '.join(details)}: a "
                "default changed since, or config.yaml was edited. Recompute with mode='force', bump "
                "infra.version, or remove that folder."
            )

    def write_outcome(self, status: Status, duration: float | None, shown: tp.Any, size: int | None = None) -> None:
        now = time.time()
        data = {"status": status, "duration": duration, "finished_at": now, "preview": shown,
                "host": hostname(), "job_id": slurm_job_id(), "pid": os.getpid()}  # where: this process
        if duration is not None:  # when: for a timeline of the jobs (exca-hydra timeline)
            data["started_at"] = now - duration
            job = self.read_job()
            submitted = job.get("submitted_at") if job else None
            if isinstance(submitted, (int, float)) and submitted <= now - duration:
                data["submitted_at"] = submitted
        if size is not None:
            data["bytes"] = size  # the result file's size: a truncated file is seen without unpickling it
        atomic_write(self.folder / OUTCOME, json.dumps(data).encode("utf8"))

    def result_intact(self, outcome: dict[str, tp.Any] | None) -> bool:
        """Whether result.pkl has the size its outcome recorded (one stat; unknown: False)."""
        size = (outcome or {}).get("bytes")
        try:
            return isinstance(size, int) and (self.folder / RESULT).stat().st_size == size
        except OSError:
            return False

    def read_outcome(self) -> dict[str, tp.Any] | None:
        try:
            data = read_json(self.folder / OUTCOME)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_result(self, value: tp.Any, duration: float | None = None) -> None:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # e.g. a lambda: the job fails with this message, nothing is stored
            raise pickle.PicklingError(
                f"The task's return value ({type(value).__name__}) cannot be pickled, so it cannot be "
                f"cached: {type(e).__name__}: {e}"
            ) from e
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (ERROR, ERROR_TEXT):
            (self.folder / name).unlink(missing_ok=True)
        try:
            shown = preview(value)
        except Exception:  # e.g. a recursion: no preview rather than no result
            shown = None
        self.write_outcome("completed", duration, shown, len(data))  # before the result: it says "completed"
        atomic_write(self.folder / RESULT, data)
        (self.folder / PREVIOUS).unlink(missing_ok=True)  # (a forced recompute's former result)

    def load_result(self) -> tp.Any:
        path = self.folder / RESULT
        try:
            with open_file(path) as f:
                check_trusted(f, path)
                try:
                    return pickle.load(f)
                except (ImportError, MemoryError, RecursionError):
                    raise  # this environment's: the file may be sound (reported below, kept)
                except Exception as e:  # truncated, garbage, or raising while rebuilt
                    raise self._set_aside(os.fstat(f.fileno()), e) from e
        except (FileNotFoundError, CacheError):
            raise
        except Exception as e:
            raise CacheError(
                f"Cached result {path} is unreadable ({type(e).__name__}: {e}); "
                "remove it (or use mode='force') to recompute."
            ) from e

    def _set_aside(self, read: os.stat_result, error: BaseException) -> CacheError:
        """A result file that does not unpickle becomes the job's failure (kept beside as
        result.pkl.corrupt), so its status says failed and mode=retry recomputes it."""
        path = self.folder / RESULT
        problem = f"Cached result {path} is unreadable ({type(error).__name__}: {error})"
        try:
            now = path.stat()
            if (now.st_ino, now.st_dev) != (read.st_ino, read.st_dev):  # rewritten meanwhile: not this one
                return CacheError(f"{problem}; it was rewritten since, read it again.")
            failure = CorruptResult(
                f"{problem}; kept as {path.name}.corrupt, and recorded as this job's failure: "
                "mode=retry recomputes it."
            )
            self.write_error(failure, "")
            os.replace(path, path.with_name(RESULT + ".corrupt"))
            return failure
        except OSError:  # e.g. a read-only cache
            return CorruptResult(f"{problem}; remove it (or use mode='force') to recompute.")

    def write_error(self, error: BaseException, traceback_text: str, duration: float | None = None) -> None:
        """Record the job's failure; an interrupt is not one (nothing is written: it runs again)."""
        if is_interrupt(error):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write_outcome("failed", duration, f"{type(error).__name__}: {short(error, str)}")
        try:
            data = pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        except Exception:
            data = pickle.dumps(JobFailure(f"{type(error).__name__}: {error}"))
        if (self.folder / PREVIOUS).exists():  # a forced recompute failed: the former result is kept
            traceback_text += (f"\n(mode=force: the result computed before is kept as {self.folder / PREVIOUS}; "
                               "rename it to result.pkl to use it again)\n")  # fmt: skip
        atomic_write(self.folder / ERROR_TEXT, traceback_text.encode("utf8"))
        atomic_write(self.folder / ERROR, data)

    def load_error(self) -> BaseException:
        try:
            with open_file(self.folder / ERROR) as f:
                check_trusted(f, self.folder / ERROR)
                error = pickle.load(f)
        except CacheError as e:
            return e
        except FileNotFoundError:  # killed, or refused to start (the job's guard): its log says why
            ref = self.read_job() or {}
            log = ref.get("stderr") or ref.get("log")
            return JobFailure(f"The job computing {self.folder} ended without a result or an error (killed, or it "
                              f"refused to start){f'; its log: {log}' if isinstance(log, str) and log else ''}")  # fmt: skip
        except Exception as e:
            return JobFailure(f"Failed job with an unreadable error file in {self.folder}: {e}")
        return error if isinstance(error, BaseException) else JobFailure(repr(error))

    def error_text(self) -> str:
        try:
            with open_file(self.folder / ERROR_TEXT, follow=False) as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - MAX_FILE_BYTES))  # the end of a huge traceback: where it failed
                return f.read(MAX_FILE_BYTES).decode("utf8", "replace")
        except FileNotFoundError:
            return ""
        except OSError as e:  # a link, a pipe: not a file this library wrote
            return f"(error.txt unreadable: {e.strerror or e})"

    def write_job(self, ref: dict[str, tp.Any]) -> None:
        """Record the job computing it; a ``placeholder`` reference (a job submitted, not yet
        started) never replaces one that is there (its worker's own), and needs no fsync."""
        self.folder.mkdir(parents=True, exist_ok=True)
        submitted: tp.Any = time.time()
        if not ref.get("placeholder"):  # a worker's own reference: the job was submitted before
            held = self.read_job()
            if held and held.get("placeholder") and isinstance(held.get("submitted_at"), (int, float)):
                submitted = held["submitted_at"]
        data = json.dumps({**ref, "submitted_at": submitted}).encode("utf8")
        if not ref.get("placeholder"):
            return atomic_write(self.folder / JOB, data)
        tmp = self.folder / f".tmp-{uuid.uuid4().hex[:8]}-{JOB}"
        try:
            with _create(tmp) as f:
                f.write(data)
            os.link(tmp, self.folder / JOB)  # fails if there is one: never replaced
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def read_job(self) -> dict[str, tp.Any] | None:
        """The job computing this entry, as its job.json says; None when there is none, or when
        it is not one of ours: written by someone you do not trust, or in a folder without
        uid.yaml (every launch records the configs first), it would only make us wait for, or
        report on, whatever process it names."""
        path = self.folder / JOB
        try:
            with open_file(path, follow=False) as f:
                owner = os.fstat(f.fileno()).st_uid
                data = json.loads(f.read(MAX_FILE_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            return None
        if not trusted_owner(owner):
            _warn_once(f"Ignoring {path}: it was written by {user_name(owner)}, whom you do not trust "
                       f"(opt in with {TRUST_ENV}, see 'Sharing a cache' in the README)")  # fmt: skip
            return None
        if not (self.folder / UID_CONFIG).exists():
            return None
        return data if isinstance(data, dict) else None

    # A claim says "this process is computing or submitting this uid": a lease (cache/lease.py),
    # created with O_EXCL, so of several processes launching the same uid at once exactly one goes ahead.
    def claim(self) -> bool:
        """Take the claim, or return False when a live process holds it (an expired claim is
        taken over, and the log says whose it was)."""
        path = self.folder / CLAIM
        why = lease.expired(path)
        check_folder_trusted(self.folder)  # nothing made inside someone else's folders
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            taken = lease.take(path)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # the first write of a computation
                raise CacheNotWritable(
                    f"Cannot compute {self.folder}: the cache folder is not writable ({e.strerror}). "
                    "A read-only cache serves the results it holds: mode=read-only "
                    "(hydra.sweeper.mode=read-only) reads them without computing the missing ones."
                ) from e
            raise CacheNotWritable(f"Cannot claim {self.folder}: {e.strerror or e}") from e  # e.g. a full disk
        if taken and why:
            logger.warning("Took over the claim: %s", why)
        if taken:
            try:  # a folder someone else owns or may rewrite: its result would be refused once computed
                check_folder_trusted(self.folder)
            except CacheError:
                lease.release(path)
                raise
        return taken

    def claim_owner(self) -> dict[str, tp.Any] | None:
        return lease.read(self.folder / CLAIM)

    def claim_is_stale(self) -> bool:
        """No claim, or one without a live owner."""
        path = self.folder / CLAIM
        return lease.read(path) is None or lease.expired(path) is not None

    def describe_claim(self) -> str:
        return lease.describe(self.folder / CLAIM)

    def release(self) -> None:
        lease.release(self.folder / CLAIM)

    def clear(self) -> None:
        """Forget the result, the error, the job and the claim; the configs stay (they define the uid)."""
        self.clear_outcome()
        (self.folder / CLAIM).unlink(missing_ok=True)

    def clear_outcome(self, keep_result: bool = False) -> None:
        """Forget the result, the error and the job, to compute again under one's own claim.
        ``keep_result`` (mode=force): the result is set aside as result.pkl.previous until the new
        one is written, so a recompute that fails or is interrupted loses nothing."""
        if keep_result and (self.folder / RESULT).exists():
            os.replace(self.folder / RESULT, self.folder / PREVIOUS)
        for name in (RESULT, ERROR, ERROR_TEXT, OUTCOME, JOB, RESULT + ".corrupt"):
            (self.folder / name).unlink(missing_ok=True)
