"""Text from outside made safe to store and to print.

Event data from argv or ``os.fsdecode``, and a server's reply decoded with
``surrogateescape`` (aiosmtplib does), may hold lone surrogates: bytes that were not
UTF-8. No file, database or terminal can encode them, so one such byte used to fail a
channel or the outbox's record of an attempt. Every text that comes from outside passes
:func:`as_text` where it enters a value of ours (a notification, a result).
"""

from __future__ import annotations

NOT_TEXT = "\ufffd"
"""What stands for a byte that was not text (U+FFFD, shown as �): visible, never silent."""


def as_text(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD; unchanged (the same object)
    when it is already encodable, which is the cheap, common case."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(NOT_TEXT if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def as_optional_text(value: str | None) -> str | None:
    """:func:`as_text` for an optional value."""
    return None if value is None else as_text(value)
