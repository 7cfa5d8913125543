"""Text from a cache (config values, results, dict keys: anyone's) shown on a terminal: control
characters (escape sequences, carriage returns, bidi overrides) are shown escaped, never acted on."""

from __future__ import annotations

import io
import typing as tp


def safe(text: str) -> str:
    """``text`` with every non-printable character but newline and tab written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


class SafeWriter(io.TextIOBase):
    """A text stream that writes through ``safe``."""

    def __init__(self, stream: tp.TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(safe(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
