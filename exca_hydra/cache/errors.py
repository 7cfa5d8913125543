"""The cache's errors (raised by the store and the trust check, recorded for lost jobs)."""


class CacheError(RuntimeError):
    """A cache entry is unreadable, inconsistent or untrusted."""


class CorruptResult(CacheError):
    """A result file that does not unpickle (truncated, overwritten): the job's failure."""


class CacheNotWritable(CacheError):
    """A job to compute, and a cache folder this process cannot write to."""


class JobFailure(RuntimeError):
    """A job ended without a result and without a Python exception (killed, timed out...)."""


class OtherProgram(CacheError):
    """An entry computed by another program of the same name: never this one's to reuse or overwrite."""


class Untrusted(CacheError):
    """A file or folder someone else wrote or could have rewritten: never loaded, never computed into."""
