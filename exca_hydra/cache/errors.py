"""The cache's errors (raised by the store and the trust check, recorded for lost jobs)."""


class CacheError(RuntimeError):
    """A cache entry is unreadable, inconsistent or untrusted."""


class JobFailure(RuntimeError):
    """A job ended without a result and without a Python exception (killed, timed out...)."""
